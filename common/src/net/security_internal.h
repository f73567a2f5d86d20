/* What rpc.c asks of security.c: the credentials of server ports and
 * channels, the token to send, the check of a received one, and the role
 * in a peer's certificate. Private to common/src/net. */
#ifndef PANDO_SECURITY_INTERNAL_H
#define PANDO_SECURITY_INTERNAL_H

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <stddef.h>

/* Credentials for a new server port: TLS with this node's certificate (and
 * client certificates required under mTLS), or insecure. The caller
 * releases them. */
grpc_server_credentials *pd__security_server_credentials(void);
/* Credentials for a new channel: TLS with tls_ca as the root (and tls_cert
 * as the client certificate), or insecure. The caller releases them. */
grpc_channel_credentials *pd__security_channel_credentials(void);

/* The "authorization" metadata value every call carries ("Bearer TOKEN"),
 * or NULL without a token. Valid until the next pd_security_configure. */
const grpc_slice *pd__security_authorization(void);

/* Whether the metadata of an arriving call carries the cluster token (in
 * constant time over the token); 1 when no token is configured. */
int pd__security_token_ok(const grpc_metadata_array *metadata);

/* Whether the metadata carries "authorization: Bearer `token`" (constant
 * time over the token; 0 for an empty token). */
int pd__security_bearer_is(const grpc_metadata_array *metadata, const char *token);

/* Writes the role named by the verified client certificate of `call` into
 * `role` ("" without one, or when the name is not a known role). */
void pd__security_peer_role(grpc_call *call, char *role, size_t rolelen);

#endif
