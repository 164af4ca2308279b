#!/usr/bin/env python3
"""Start a throwaway Orthanc on 127.0.0.1, to try an import before the new PACS is ready.

Usage::

    python scripts/throwaway_orthanc.py [--folder DIR] [--http-port N] [--dicom-port N]
                                        [--aet ORTHANC]

Orthanc (Debian packages ``orthanc`` and ``orthanc-dicomweb``) runs in the foreground with a
temporary configuration: storage and index in ``--folder`` (default: a new temporary folder,
removed at the end), HTTP and DICOM ports picked free unless given, remote access off (Orthanc
1.10 has no bind address: with ``RemoteAccessAllowed: false`` its HTTP server answers loopback
only), no authentication, the DICOMweb plugin on ``/dicom-web/``. The script waits until
``/system`` answers, prints where to send and what to look at, and stops Orthanc (by its PID)
on Ctrl-C. The tests import :class:`ThrowawayOrthanc` from here.

It is a test bench, never a PACS: the storage goes away with the folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ORTHANC = "Orthanc"  # Debian's /usr/sbin/Orthanc
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
START_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> str | None:
    """Why Orthanc cannot start here (None when it can)."""
    if shutil.which(ORTHANC) is None:
        return "Orthanc is not installed (Debian package orthanc)"
    if not DICOMWEB_PLUGIN.exists():
        return f"the DICOMweb plugin {DICOMWEB_PLUGIN} is missing (Debian package orthanc-dicomweb)"
    return None


class ThrowawayOrthanc:
    """An Orthanc process with its own storage, started and stopped by this object."""

    def __init__(self, folder: Path, http_port: int | None = None,
                 dicom_port: int | None = None, aet: str = "ORTHANC") -> None:
        self.folder, self.aet = folder, aet
        self.http_port = http_port or free_port()
        self.dicom_port = dicom_port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def configuration(self) -> dict[str, Any]:
        return {
            "Name": "migrate-fs throwaway", "DicomAet": self.aet,
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "index"),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False, "StorageCompression": False,
            "OverwriteInstances": False, "SaveJobs": False, "HttpDescribeErrors": True,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
        }

    def start(self) -> ThrowawayOrthanc:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "orthanc.json"
        config.write_text(json.dumps(self.configuration(), indent=2))
        log = open(self.folder / "orthanc.log", "wb")  # noqa: SIM115 - kept for the process
        self.process = subprocess.Popen([ORTHANC, str(config)], stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with code {self.process.returncode}: see "
                                   f"{self.folder / 'orthanc.log'}")
            with contextlib.suppress(OSError):
                self.get("/system")
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer on {self.url} within {START_TIMEOUT:g} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ThrowawayOrthanc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/dicom") -> bytes:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=60) as answer:  # noqa: S310 - loopback only
            return bytes(answer.read())

    def get(self, path: str) -> Any:
        return json.loads(self.request("GET", path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, help="storage and index (default: temporary)")
    parser.add_argument("--http-port", type=int, help="HTTP port (default: a free one)")
    parser.add_argument("--dicom-port", type=int, help="DICOM port (default: a free one)")
    parser.add_argument("--aet", default="ORTHANC", help="Orthanc's AE title")
    args = parser.parse_args(argv)
    # Ctrl-C and a plain kill stop Orthanc too (whatever disposition this process inherited)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    why = available()
    if why:
        print(f"throwaway_orthanc: {why}; install it: apt-get install orthanc orthanc-dicomweb",
              file=sys.stderr)
        return 1
    temporary = args.folder is None
    folder = Path(tempfile.mkdtemp(prefix="orthanc-")) if temporary else args.folder
    orthanc = ThrowawayOrthanc(folder, args.http_port, args.dicom_port, args.aet)
    try:
        with orthanc:
            print(f"Orthanc {orthanc.get('/system')['Version']} on 127.0.0.1 (Ctrl-C stops it)")
            print(f"  web UI and REST:  {orthanc.url}/app/explorer.html")
            print(f"  DICOMweb:         {orthanc.dicomweb}")
            print(f"  DICOM (C-STORE):  {orthanc.aet}@127.0.0.1:{orthanc.dicom_port}")
            print(f"  send an output:   dcmsend -aec {orthanc.aet} --scan-directories "
                  f"--recurse 127.0.0.1 {orthanc.dicom_port} OUT")
            print(f"  check it:         migrate-fs reconcile --run RUN --dicomweb "
                  f"{orthanc.dicomweb}")
            print(f"  storage:          {folder}", flush=True)
            _wait(orthanc)
    except KeyboardInterrupt:
        pass
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


def _wait(orthanc: ThrowawayOrthanc) -> None:
    while orthanc.process is not None and orthanc.process.poll() is None:
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
