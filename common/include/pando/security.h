/* Transport security and identity of a Pando process: TLS certificates, the
 * cluster token and the role a peer's certificate names.
 *
 * One process is one node with one identity, so the security is
 * process-wide: pd_security_configure() reads the PEM files and the token
 * file once at start-up, and from then on every server port
 * (pd_rpc_server_listen) and every channel (pd_rpc_channel_new) of the
 * process uses it. With nothing configured everything stays plaintext and
 * unauthenticated, as before. */
#ifndef PANDO_SECURITY_H
#define PANDO_SECURITY_H

#include <stddef.h>
#include <stdint.h>

/* What to configure; every string may be NULL or "" (not set). The names in
 * error messages are the settings' keys (tls_cert, ...). */
typedef struct pd_security_settings {
  const char *tls_cert;    /* PEM certificate (chain) of this node: served, and shown to servers */
  const char *tls_key;     /* PEM private key of tls_cert */
  const char *tls_ca;      /* PEM CA certificate(s) peers' certificates must chain to */
  const char *token_file;  /* file whose first line is the cluster token */
  const char *token;       /* the token itself (pandoctl's PANDO_TOKEN); wins over token_file */
  int require_client_cert; /* servers demand a client certificate signed by tls_ca (mTLS) */
} pd_security_settings;

/* Longest cluster token, in bytes. */
#define PD_SECURITY_MAX_TOKEN 512

/* Roles a certificate may name (the common name up to its first '.'). */
#define PD_ROLE_COORDINATOR "coordinator"
#define PD_ROLE_PS "ps"
#define PD_ROLE_WORKER "worker"
#define PD_ROLE_SELECTOR "selector"
#define PD_ROLE_ADMIN "admin"

/* Reads and checks the files of `settings` and makes them this process's
 * security, replacing what an earlier call set (all unset: plaintext and no
 * token). Servers use TLS when tls_cert and tls_key are set; channels use
 * TLS when tls_ca or tls_cert is set (tls_ca is the root; without it the
 * system's roots), and present tls_cert as their client certificate. The
 * token is sent with every call and required by every server (but for the
 * health service). Returns 0, or -EINVAL / -errno with a message naming the
 * setting and the file in `err` ("tls_key: /x/k.pem: no PEM private key");
 * the previous security is then kept. Before any server or channel is made
 * with it; not thread-safe. */
int pd_security_configure(const pd_security_settings *settings, char *err, size_t errlen);

/* Whether servers demand client certificates (mTLS), so that a call's
 * peer role (pd_rpc_call_peer_role) is known. */
int pd_security_client_auth(void);

/* Whether a cluster token is configured. */
int pd_security_has_token(void);

/* Bytes of randomness in a job token (written as twice as many hex digits). */
#define PD_SECURITY_JOB_TOKEN_BYTES 32

/* Writes a new random token (PD_SECURITY_JOB_TOKEN_BYTES from the system's
 * CSPRNG, as hex) into `out` of at least 2 * PD_SECURITY_JOB_TOKEN_BYTES + 1
 * bytes. Returns 0 or -EIO. */
int pd_security_new_token(char *out, size_t outlen);

/* Writes a device's report secret for round id `round` (RoundTask.report_secret)
 * into `out` (at least 2 * PD_SECURITY_JOB_TOKEN_BYTES + 1 bytes): the
 * lowercase hex of HMAC-SHA256(key = `key`, message = "ROUND:DEVICE_ID", the
 * round id in decimal), `key` being the job's SelectRequest.report_key. The
 * selector hands it to the chosen device, the coordinator checks it in
 * DeviceReport. Returns 0, or -EIO (an empty key included). */
int pd_security_report_secret(const char *key, uint64_t round, const char *device_id, char *out,
                              size_t outlen);

/* Whether the secret a client sent (`got`, NUL-terminated; NULL is "") is
 * `want`, compared in constant time over `want`. An empty `want` matches
 * nothing. For node and session secrets (RegisterResponse.node_secret,
 * CheckInResponse.session_secret). */
int pd_security_secret_is(const char *got, const char *want);

/* Whether `role` is one pd_security accepts in a certificate. */
int pd_security_role_known(const char *role);

#endif
