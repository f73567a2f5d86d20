/* The process-wide transport security: reads and checks the PEM files and
 * the cluster token once, makes the gRPC credentials of server ports and
 * channels, checks the token of arriving calls and reads the role in a
 * peer's certificate; see pando/security.h. */
#include "pando/security.h"

#include <ctype.h>
#include <errno.h>
#include <grpc/grpc_security_constants.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"
#include "security_internal.h"

/* Largest PEM file read (a certificate chain is a few KiB). */
#define MAX_PEM_BYTES (1 << 20)

static const char *const known_roles[] = {PD_ROLE_COORDINATOR, PD_ROLE_PS,    PD_ROLE_WORKER,
                                          PD_ROLE_SELECTOR,    PD_ROLE_ADMIN, NULL};

/* The security in force. Strings are NULL when not set. */
static struct {
  char *cert_pem, *key_pem, *ca_pem;
  char *authorization; /* "Bearer TOKEN" */
  size_t authorization_len;
  grpc_slice authorization_slice; /* over `authorization` (static: not reference counted) */
  int require_client_cert;
} state;

static int is_set(const char *s) { return s && s[0]; }

/* Reads the whole file `path` (setting `key`) into a new NUL-terminated
 * string. */
static int read_text(const char *key, const char *path, size_t max, char **out, char *err,
                     size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    return pd_errf(err, errlen, -e, "%s: cannot read %s: %s", key, path, strerror(e));
  }
  char *buf = pd_xmalloc(max + 1);
  size_t n = fread(buf, 1, max + 1, f);
  int failed = ferror(f);
  fclose(f);
  if (failed || n > max) {
    free(buf);
    return failed
               ? pd_errf(err, errlen, -EIO, "%s: cannot read %s", key, path)
               : pd_errf(err, errlen, -EINVAL, "%s: %s is larger than %zu bytes", key, path, max);
  }
  buf[n] = '\0';
  if (strlen(buf) != n) {
    free(buf);
    return pd_errf(err, errlen, -EINVAL, "%s: %s is not a text file", key, path);
  }
  *out = buf;
  return 0;
}

/* OpenSSL's callback for an encrypted key: no passphrase, so it fails. */
static int no_passphrase(char *buf, int size, int rwflag, void *user) {
  (void)buf, (void)size, (void)rwflag, (void)user;
  return 0;
}

/* Counts the PEM certificates in `pem`; the first is put in *first (may be
 * NULL; the caller frees it). */
static int count_certs(const char *pem, X509 **first) {
  BIO *bio = BIO_new_mem_buf(pem, -1);
  int n = 0;
  X509 *cert;
  while ((cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
    if (n++ == 0 && first)
      *first = cert;
    else
      X509_free(cert);
  }
  BIO_free(bio);
  ERR_clear_error(); /* the loop ends on "no start line" */
  return n;
}

static int load_cert_and_key(const pd_security_settings *s, char **cert_pem, char **key_pem,
                             char *err, size_t errlen) {
  X509 *cert = NULL;
  EVP_PKEY *key = NULL;
  BIO *bio = NULL;
  int rc;
  if ((rc = read_text("tls_cert", s->tls_cert, MAX_PEM_BYTES, cert_pem, err, errlen)) != 0 ||
      (rc = read_text("tls_key", s->tls_key, MAX_PEM_BYTES, key_pem, err, errlen)) != 0)
    goto done;
  if (count_certs(*cert_pem, &cert) == 0) {
    rc = pd_errf(err, errlen, -EINVAL, "tls_cert: %s holds no PEM certificate", s->tls_cert);
    goto done;
  }
  bio = BIO_new_mem_buf(*key_pem, -1);
  key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
  if (!key) {
    rc = pd_errf(err, errlen, -EINVAL,
                 "tls_key: %s holds no PEM private key (or an encrypted one: Pando needs it "
                 "unencrypted)",
                 s->tls_key);
    goto done;
  }
  if (X509_check_private_key(cert, key) != 1) {
    rc = pd_errf(err, errlen, -EINVAL,
                 "tls_key: the key in %s does not belong to the certificate in %s (tls_cert)",
                 s->tls_key, s->tls_cert);
    goto done;
  }
  rc = 0;
done:
  ERR_clear_error();
  EVP_PKEY_free(key);
  BIO_free(bio);
  X509_free(cert);
  return rc;
}

/* Reads the token: the file's first line, without surrounding blanks. */
static int load_token(const pd_security_settings *s, char **authorization, char *err,
                      size_t errlen) {
  char *text = NULL;
  const char *where = "PANDO_TOKEN", *key = "token";
  if (is_set(s->token)) {
    text = pd_xstrdup(s->token);
  } else {
    int rc = read_text("token_file", s->token_file, 4096, &text, err, errlen);
    if (rc != 0)
      return rc;
    where = s->token_file;
    key = "token_file";
  }
  size_t text_len = strlen(text); /* all of it is wiped at the end */
  if (!is_set(s->token)) {
    char *nl = strpbrk(text, "\r\n");
    if (nl)
      *nl = '\0';
  }
  char *start = text, *end = text + strlen(text);
  while (*start == ' ' || *start == '\t')
    start++;
  while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  *end = '\0';
  size_t len = strlen(start);
  int rc = 0;
  if (len == 0) {
    rc = pd_errf(err, errlen, -EINVAL, "%s: %s: the token is empty", key, where);
  } else if (len > PD_SECURITY_MAX_TOKEN) {
    rc = pd_errf(err, errlen, -EINVAL, "%s: %s: the token is longer than %d bytes", key, where,
                 PD_SECURITY_MAX_TOKEN);
  } else {
    for (const char *p = start; *p && rc == 0; p++)
      if (!isgraph((unsigned char)*p))
        rc = pd_errf(err, errlen, -EINVAL,
                     "%s: %s: the token may hold printable ASCII only (no blanks inside)", key,
                     where);
  }
  if (rc == 0) {
    size_t size = len + sizeof "Bearer ";
    *authorization = pd_xmalloc(size);
    snprintf(*authorization, size, "Bearer %s", start);
  }
  /* the token does not stay in freed memory */
  memset(text, 0, text_len);
  free(text);
  return rc;
}

static void free_state(void) {
  free(state.cert_pem);
  free(state.key_pem);
  free(state.ca_pem);
  if (state.authorization)
    memset(state.authorization, 0, state.authorization_len);
  free(state.authorization);
  memset(&state, 0, sizeof state);
}

int pd_security_configure(const pd_security_settings *s, char *err, size_t errlen) {
  char *cert_pem = NULL, *key_pem = NULL, *ca_pem = NULL, *authorization = NULL;
  int rc = 0;
  if (is_set(s->tls_cert) != is_set(s->tls_key)) {
    rc = pd_errf(err, errlen, -EINVAL, "%s: must be set together with %s",
                 is_set(s->tls_cert) ? "tls_cert" : "tls_key",
                 is_set(s->tls_cert) ? "tls_key" : "tls_cert");
    goto fail;
  }
  if (s->require_client_cert && (!is_set(s->tls_cert) || !is_set(s->tls_ca))) {
    rc = pd_errf(err, errlen, -EINVAL,
                 "tls_client_auth: 'require' needs tls_cert, tls_key and tls_ca (the CA that "
                 "signed the clients' certificates)");
    goto fail;
  }
  if (is_set(s->tls_cert) && (rc = load_cert_and_key(s, &cert_pem, &key_pem, err, errlen)) != 0)
    goto fail;
  if (is_set(s->tls_ca)) {
    if ((rc = read_text("tls_ca", s->tls_ca, MAX_PEM_BYTES, &ca_pem, err, errlen)) != 0)
      goto fail;
    if (count_certs(ca_pem, NULL) == 0) {
      rc = pd_errf(err, errlen, -EINVAL, "tls_ca: %s holds no PEM certificate", s->tls_ca);
      goto fail;
    }
  }
  if ((is_set(s->token) || is_set(s->token_file)) &&
      (rc = load_token(s, &authorization, err, errlen)) != 0)
    goto fail;
  free_state();
  state.cert_pem = cert_pem;
  state.key_pem = key_pem;
  state.ca_pem = ca_pem;
  state.authorization = authorization;
  if (authorization) {
    state.authorization_len = strlen(authorization);
    state.authorization_slice =
        grpc_slice_from_static_buffer(state.authorization, state.authorization_len);
  }
  state.require_client_cert = s->require_client_cert;
  return 0;
fail:
  free(cert_pem);
  if (key_pem)
    memset(key_pem, 0, strlen(key_pem));
  free(key_pem);
  free(ca_pem);
  free(authorization);
  return rc;
}

int pd_security_client_auth(void) { return state.require_client_cert; }
int pd_security_has_token(void) { return state.authorization != NULL; }

int pd_security_role_known(const char *role) {
  for (const char *const *r = known_roles; *r; r++)
    if (strcmp(*r, role) == 0)
      return 1;
  return 0;
}

grpc_server_credentials *pd__security_server_credentials(void) {
  if (!state.cert_pem)
    return grpc_insecure_server_credentials_create();
  grpc_ssl_pem_key_cert_pair pair = {state.key_pem, state.cert_pem};
  return grpc_ssl_server_credentials_create_ex(
      state.ca_pem, &pair, 1,
      state.require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
      NULL);
}

grpc_channel_credentials *pd__security_channel_credentials(void) {
  if (!state.cert_pem && !state.ca_pem)
    return grpc_insecure_credentials_create();
  grpc_ssl_pem_key_cert_pair pair = {state.key_pem, state.cert_pem};
  return grpc_ssl_credentials_create(state.ca_pem, state.cert_pem ? &pair : NULL, NULL, NULL);
}

const grpc_slice *pd__security_authorization(void) {
  return state.authorization ? &state.authorization_slice : NULL;
}

/* Whether `got` (`got_len` bytes) is `want` (`want_len` bytes), in constant
 * time over the expected value, whatever was sent. */
static int bytes_equal(const unsigned char *got, size_t got_len, const unsigned char *want,
                       size_t want_len) {
  volatile unsigned diff = got_len != want_len;
  for (size_t k = 0; k < want_len; k++)
    diff |= (unsigned)(want[k] ^ (k < got_len ? got[k] : 0));
  return diff == 0;
}

int pd_security_secret_is(const char *got, const char *want) {
  if (!want || !want[0])
    return 0;
  return bytes_equal((const unsigned char *)(got ? got : ""), got ? strlen(got) : 0,
                     (const unsigned char *)want, strlen(want));
}

/* Whether an "authorization" entry of `metadata` is `want` (`want_len`
 * bytes), in constant time over `want`. */
static int authorization_is(const grpc_metadata_array *metadata, const char *want_text,
                            size_t want_len) {
  int found = 0;
  for (size_t i = 0; i < metadata->count; i++) {
    const grpc_metadata *md = &metadata->metadata[i];
    if (!grpc_slice_str_cmp(md->key, "authorization")) {
      found |= bytes_equal(GRPC_SLICE_START_PTR(md->value), GRPC_SLICE_LENGTH(md->value),
                           (const unsigned char *)want_text, want_len);
    }
  }
  return found;
}

int pd__security_token_ok(const grpc_metadata_array *metadata) {
  if (!state.authorization)
    return 1;
  return authorization_is(metadata, state.authorization, state.authorization_len);
}

int pd__security_bearer_is(const grpc_metadata_array *metadata, const char *token) {
  if (!token || !token[0] || strlen(token) > PD_SECURITY_MAX_TOKEN)
    return 0;
  char want[PD_SECURITY_MAX_TOKEN + sizeof "Bearer "];
  int len = snprintf(want, sizeof want, "Bearer %s", token);
  int ok = authorization_is(metadata, want, (size_t)len);
  memset(want, 0, sizeof want);
  return ok;
}

int pd_security_new_token(char *out, size_t outlen) {
  unsigned char bytes[PD_SECURITY_JOB_TOKEN_BYTES];
  PD_ASSERT(outlen >= 2 * sizeof bytes + 1);
  if (RAND_bytes(bytes, (int)sizeof bytes) != 1)
    return -EIO;
  for (size_t i = 0; i < sizeof bytes; i++)
    snprintf(out + 2 * i, 3, "%02x", bytes[i]);
  memset(bytes, 0, sizeof bytes);
  return 0;
}

int pd_security_report_secret(const char *key, uint64_t round, const char *device_id, char *out,
                              size_t outlen) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  char message[32 + 256];
  PD_ASSERT(outlen >= 2 * PD_SECURITY_JOB_TOKEN_BYTES + 1);
  snprintf(message, sizeof message, "%llu:%s", (unsigned long long)round, device_id);
  if (!key || !key[0] ||
      !HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)message, strlen(message),
            mac, &len) ||
      len != PD_SECURITY_JOB_TOKEN_BYTES)
    return -EIO;
  for (unsigned int i = 0; i < len; i++)
    snprintf(out + 2 * i, 3, "%02x", mac[i]);
  memset(mac, 0, sizeof mac);
  return 0;
}

void pd__security_peer_role(grpc_call *call, char *role, size_t rolelen) {
  role[0] = '\0';
  if (!state.require_client_cert)
    return;
  grpc_auth_context *ctx = grpc_call_auth_context(call);
  if (!ctx)
    return;
  if (grpc_auth_context_peer_is_authenticated(ctx)) {
    grpc_auth_property_iterator it =
        grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_CN_PROPERTY_NAME);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    if (p) {
      char name[64];
      size_t n = p->value_length < sizeof name - 1 ? p->value_length : sizeof name - 1;
      memcpy(name, p->value, n);
      name[n] = '\0';
      name[strcspn(name, ".")] = '\0';
      if (pd_security_role_known(name))
        pd_strlcpy(role, name, rolelen);
    }
  }
  grpc_auth_context_release(ctx);
}
