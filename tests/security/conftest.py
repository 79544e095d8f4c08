"""Fixtures for the security tests: a throwaway PKI minted with the shipped script, and mosquitto
with the shipped ACL behind a TLS listener that requires client certificates."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulators.broker import MosquittoBroker, MosquittoNotFound, TlsListener

REPO = Path(__file__).resolve().parents[2]
MINT = REPO / "config" / "mosquitto" / "mint-certs.sh"
ACL = REPO / "config" / "mosquitto" / "packstation.acl"

SITE = "site1"
STATION_A = "st7"
STATION_B = "st8"
IDENTITY_A = f"{SITE}/{STATION_A}"
IDENTITY_B = f"{SITE}/{STATION_B}"
WMS = "wms"
REISSUE = "reissue"


@dataclass(frozen=True)
class Pki:
    ca: Path
    directory: Path
    rogue: Path  # another CA's directory: a certificate for IDENTITY_B the broker must not trust

    def cert(self, identity: str) -> Path:
        return self.directory / f"{identity.replace('/', '_')}.crt"

    def key(self, identity: str) -> Path:
        return self.directory / f"{identity.replace('/', '_')}.key"


def mint(*args: str) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is required for the security tests (Debian: apt-get install openssl)")
    subprocess.run(["sh", str(MINT), *args], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    mint("ca", str(directory))
    mint("server", str(directory), "localhost", "127.0.0.1")
    for identity in (IDENTITY_A, IDENTITY_B, WMS, REISSUE):
        mint("client", str(directory), identity)
    rogue = tmp_path_factory.mktemp("rogue-pki")
    mint("ca", str(rogue))
    mint("client", str(rogue), IDENTITY_B)
    return Pki(ca=directory / "ca.crt", directory=directory, rogue=rogue)


@pytest.fixture
def tls_broker(pki: Pki, tmp_path: Path) -> Iterator[MosquittoBroker]:
    """The shipped ACL, anonymous off, one TLS listener requiring a client certificate whose CN
    becomes the user name."""
    workdir = tmp_path / "broker"
    workdir.mkdir()
    tls = TlsListener(
        ca_file=pki.ca,
        cert_file=pki.directory / "server.crt",
        key_file=pki.directory / "server.key",
    )
    try:
        broker = MosquittoBroker(workdir, acl=ACL.read_text(), allow_anonymous=False, tls=tls)
    except MosquittoNotFound as missing:
        pytest.fail(str(missing))
    broker.start()
    yield broker
    broker.stop()
