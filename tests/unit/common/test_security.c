/* Unit tests of the process-wide security settings (common/src/net/security.c):
 * what pd_security_configure accepts and refuses, and with which messages.
 * TLS itself, the token on the wire and the roles are tested on real daemons
 * by tests/integration/test_tls.sh and test_mtls.sh. */
#include "pando/security.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../test.h"

static char dir[64];

/* Writes `text` to the file `name` of the test folder; returns its path, in `path`. */
static const char *write_file(const char *name, const char *text, char *path, size_t size) {
  snprintf(path, size, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f)
    abort();
  fputs(text, f);
  fclose(f);
  return path;
}

static void test_nothing_set_is_plaintext(void) {
  pd_security_settings s = {0};
  char err[256] = "";
  CHECK_EQ_INT(pd_security_configure(&s, err, sizeof err), 0);
  CHECK_EQ_INT(pd_security_has_token(), 0);
  CHECK_EQ_INT(pd_security_client_auth(), 0);
  pd_security_settings empty = {"", "", "", "", "", 0};
  CHECK_EQ_INT(pd_security_configure(&empty, err, sizeof err), 0);
  CHECK_EQ_INT(pd_security_has_token(), 0);
}

static void test_token_file_first_line_trimmed(void) {
  char path[128], err[256] = "";
  pd_security_settings s = {0};
  s.token_file = write_file("token", "  tok-123_abc \t\nsecond line\n", path, sizeof path);
  CHECK_EQ_INT(pd_security_configure(&s, err, sizeof err), 0);
  CHECK_EQ_INT(pd_security_has_token(), 1);
  pd_security_settings env = {0};
  env.token = "  tok-456 \t";
  CHECK_EQ_INT(pd_security_configure(&env, err, sizeof err), 0);
  CHECK_EQ_INT(pd_security_has_token(), 1);
}

static void test_bad_tokens_refused_naming_the_file(void) {
  char path[128], err[256];
  pd_security_settings s = {0};
  s.token_file = write_file("empty", "\n", path, sizeof path);
  CHECK_EQ_INT(pd_security_configure(&s, err, sizeof err), -EINVAL);
  CHECK_STR_CONTAINS(err, "token_file: ");
  CHECK_STR_CONTAINS(err, "/empty: the token is empty");
  s.token_file = write_file("blank", "two words\n", path, sizeof path);
  CHECK_EQ_INT(pd_security_configure(&s, err, sizeof err), -EINVAL);
  CHECK_STR_CONTAINS(err, "/blank: the token may hold printable ASCII only");
  char big[PD_SECURITY_MAX_TOKEN + 2];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  s.token_file = write_file("big", big, path, sizeof path);
  CHECK_EQ_INT(pd_security_configure(&s, err, sizeof err), -EINVAL);
  CHECK_STR_CONTAINS(err, "the token is longer than 512 bytes");
  snprintf(path, sizeof path, "%s/missing", dir);
  s.token_file = path;
  CHECK_EQ_INT(pd_security_configure(&s, err, sizeof err), -ENOENT);
  CHECK_STR_CONTAINS(err, "token_file: cannot read ");
  CHECK_STR_CONTAINS(err, "/missing: No such file or directory");
  /* the token itself (pandoctl's PANDO_TOKEN) is named as such */
  pd_security_settings env = {0};
  env.token = "bad token";
  CHECK_EQ_INT(pd_security_configure(&env, err, sizeof err), -EINVAL);
  CHECK_STR_CONTAINS(err, "token: PANDO_TOKEN: the token may hold printable ASCII only");
}

static void test_failed_configure_keeps_the_previous(void) {
  char path[128], err[256];
  pd_security_settings good = {0};
  good.token = "secret-1";
  CHECK_EQ_INT(pd_security_configure(&good, err, sizeof err), 0);
  pd_security_settings bad = {0};
  bad.token_file = write_file("empty2", "", path, sizeof path);
  CHECK(pd_security_configure(&bad, err, sizeof err) < 0);
  CHECK_EQ_INT(pd_security_has_token(), 1);
}

static void test_settings_that_need_each_other(void) {
  char path[128], err[256];
  pd_security_settings s = {0};
  s.tls_cert = "cert.pem";
  CHECK_EQ_INT(pd_security_configure(&s, err, sizeof err), -EINVAL);
  CHECK_STR_CONTAINS(err, "tls_cert: must be set together with tls_key");
  s = (pd_security_settings){0};
  s.tls_key = "key.pem";
  CHECK_EQ_INT(pd_security_configure(&s, err, sizeof err), -EINVAL);
  CHECK_STR_CONTAINS(err, "tls_key: must be set together with tls_cert");
  s = (pd_security_settings){0};
  s.require_client_cert = 1;
  CHECK_EQ_INT(pd_security_configure(&s, err, sizeof err), -EINVAL);
  CHECK_STR_CONTAINS(err, "tls_client_auth: 'require' needs tls_cert, tls_key and tls_ca");
  s = (pd_security_settings){0};
  s.tls_ca = write_file("ca.pem", "-----BEGIN CERTIFICATE-----\nnope\n", path, sizeof path);
  CHECK_EQ_INT(pd_security_configure(&s, err, sizeof err), -EINVAL);
  CHECK_STR_CONTAINS(err, "tls_ca: ");
  CHECK_STR_CONTAINS(err, "/ca.pem holds no PEM certificate");
}

static void test_new_tokens_are_random_hex(void) {
  char a[2 * PD_SECURITY_JOB_TOKEN_BYTES + 1], b[sizeof a];
  CHECK_EQ_INT(pd_security_new_token(a, sizeof a), 0);
  CHECK_EQ_INT(pd_security_new_token(b, sizeof b), 0);
  CHECK_EQ_INT(strlen(a), 64);
  CHECK_EQ_INT(strspn(a, "0123456789abcdef"), 64);
  CHECK(strcmp(a, b) != 0);
}

static void test_secrets_compare_whole(void) {
  CHECK(pd_security_secret_is("abc", "abc"));
  CHECK(!pd_security_secret_is("abd", "abc"));
  CHECK(!pd_security_secret_is("ab", "abc"));   /* a prefix */
  CHECK(!pd_security_secret_is("abcd", "abc")); /* longer */
  CHECK(!pd_security_secret_is("", "abc"));
  CHECK(!pd_security_secret_is(NULL, "abc"));
  CHECK(!pd_security_secret_is("", "")); /* no secret set matches nothing */
  CHECK(!pd_security_secret_is(NULL, NULL));
}

static void test_report_secret_is_hmac_of_round_and_device(void) {
  char key[65], a[65], b[65];
  memset(key, 'k', 64);
  key[64] = '\0';
  CHECK_EQ_INT(pd_security_report_secret(key, 7, "phone-1", a, sizeof a), 0);
  /* Python: hmac.new(b"k" * 64, b"7:phone-1", hashlib.sha256).hexdigest() */
  CHECK(strcmp(a, "51a26cff25cd8f394782468f2f1b874038d6761c1a69cc859d92c732d9e30afc") == 0);
  CHECK_EQ_INT(pd_security_report_secret(key, 8, "phone-1", b, sizeof b), 0);
  CHECK(strcmp(a, b) != 0);
  CHECK_EQ_INT(pd_security_report_secret(key, 7, "phone-2", b, sizeof b), 0);
  CHECK(strcmp(a, b) != 0);
  CHECK_EQ_INT(pd_security_report_secret("", 7, "phone-1", b, sizeof b), -EIO);
}

static void test_roles(void) {
  CHECK(pd_security_role_known("coordinator"));
  CHECK(pd_security_role_known("ps"));
  CHECK(pd_security_role_known("worker"));
  CHECK(pd_security_role_known("selector"));
  CHECK(pd_security_role_known("admin"));
  CHECK(!pd_security_role_known("root"));
  CHECK(!pd_security_role_known(""));
}

int main(int argc, char **argv) {
  /* every process (the runner and each case's child) has its own folder */
  snprintf(dir, sizeof dir, "/tmp/pando-test-security-XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  PD_RUN(test_nothing_set_is_plaintext);
  PD_RUN(test_token_file_first_line_trimmed);
  PD_RUN(test_bad_tokens_refused_naming_the_file);
  PD_RUN(test_failed_configure_keeps_the_previous);
  PD_RUN(test_settings_that_need_each_other);
  PD_RUN(test_new_tokens_are_random_hex);
  PD_RUN(test_secrets_compare_whole);
  PD_RUN(test_report_secret_is_hmac_of_round_and_device);
  PD_RUN(test_roles);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  PD_TEST_DONE();
}
