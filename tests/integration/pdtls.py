"""TLS and the cluster token for the Python side of the integration tests.

Without PANDO_TEST_TLS (or with 0) everything is plaintext, as before. With
PANDO_TEST_TLS=1 (`make test-tls`) every daemon a test starts serves TLS and
demands the cluster token, and every channel made here uses them; with
PANDO_TEST_TLS=mtls the daemons also demand client certificates. The
certificates come from tools/certs.sh: those of the calling lib.sh test
(T_CERTS, exported by t_tls) or a throw-away folder of this process.
  flags(binary)   the TLS flags of a daemon (its role from the binary's name)
  channel(addr)   a channel to a daemon, with the token on every call
  env()           os.environ with PANDO_CA, PANDO_CERT, PANDO_KEY and
                  PANDO_TOKEN_FILE for pandoctl and pdtest
  MODE            None, "tls" or "mtls"
"""
import atexit
import os
import shutil
import subprocess
import tempfile

import grpc

_setting = os.environ.get("PANDO_TEST_TLS", "")
MODE = {"": None, "0": None, "1": "tls", "tls": "tls", "mtls": "mtls"}.get(_setting, "tls")
CERTS = None
if MODE:
    CERTS = os.environ.get("T_CERTS")
    if not CERTS or not os.path.exists(os.path.join(CERTS, "token")):
        CERTS = tempfile.mkdtemp(prefix="pando-certs.")
        atexit.register(shutil.rmtree, CERTS, True)
        subprocess.run(["sh", "tools/certs.sh", CERTS], check=True)
    print("# PANDO_TEST_TLS: the daemons run with %s and a cluster token" % MODE, flush=True)


def _read(name):
    with open(os.path.join(CERTS, name), "rb") as f:
        return f.read()


def token():
    """The cluster token, or None in plaintext mode."""
    return _read("token").decode().strip() if MODE else None


def flags(binary):
    """The TLS flags of a daemon (pando-ps, pando-coordinator, ...)."""
    if not MODE:
        return []
    role = os.path.basename(binary)
    role = role[len("pando-"):] if role.startswith("pando-") else role
    c = CERTS
    return ["--tls-cert", os.path.join(c, role + ".pem"), "--tls-key", os.path.join(c, role + ".key"),
            "--tls-ca", os.path.join(c, "ca.pem"), "--token-file", os.path.join(c, "token"),
            "--tls-client-auth", "require" if MODE == "mtls" else "none"]


def channel(address, options=None, role="coordinator"):
    """A channel to `address`: plaintext, or TLS trusting the test CA with
    `role`'s client certificate and the cluster token on every call (the
    coordinator's role may call every method of a server)."""
    if not MODE:
        return grpc.insecure_channel(address, options=options)
    creds = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(root_certificates=_read("ca.pem"),
                                     private_key=_read(role + ".key"),
                                     certificate_chain=_read(role + ".pem")),
        grpc.access_token_call_credentials(token()))
    return grpc.secure_channel(address, creds, options=options)


def env(role="admin"):
    """The environment for pandoctl and pdtest: the CA, `role`'s certificate
    and the token file (plaintext mode: os.environ as it is)."""
    e = dict(os.environ)
    if MODE:
        e.update(PANDO_CA=os.path.join(CERTS, "ca.pem"), PANDO_CERT=os.path.join(CERTS, role + ".pem"),
                 PANDO_KEY=os.path.join(CERTS, role + ".key"),
                 PANDO_TOKEN_FILE=os.path.join(CERTS, "token"))
    return e
