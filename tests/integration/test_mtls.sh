# Mutual TLS: test_tls.sh on a cluster whose servers require client
# certificates (tls_client_auth: require) and check the roles in them: a job
# still runs to SUCCEEDED (the coordinator creates the shards, workers and
# servers register with certificates of their roles), a client without a
# certificate is refused, a worker's certificate cannot CreateShard,
# DropShard or register as a server.
T_TLS_MODE=mtls
. tests/integration/test_tls.sh
