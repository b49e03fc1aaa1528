"""Home Assistant Core for tests/test_home_assistant.py, in a venv of its own (it pins its own paho-mqtt,
aiohttp and more), cached under ~/.cache/tuimeter. Install it with

    python3 -m tests.home_assistant_setup

from the repository (`.ci/run` does). About 4 minutes and 700 MB the first time; a second run with the
same requirements does nothing. Only the standard library here: this runs before any venv exists.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

VERSION = "2024.3.3"  # the newest Home Assistant Core that runs on Python 3.11 (2025.x needs 3.13)
# Installed with Home Assistant's own package_constraints.txt. The test runs `hass --skip-pip`, so the
# requirements of every integration it loads are here up front (from their manifests: mqtt and its
# entity platforms, onboarding, energy, history, recorder, frontend, backup and the default set).
FIRST = [f"homeassistant=={VERSION}", "josepy<2"]  # josepy 2.x breaks HA's HTTP server: every request 500
REQUIREMENTS = [
    "home-assistant-frontend==20240307.0",  # without it HA 2024.3 starts in recovery mode
    "paho-mqtt==1.6.1",
    "Pillow==10.2.0",
    "PyTurboJPEG==1.7.1",
    "numpy",  # the camera platform, which the MQTT integration loads, needs it
    "SQLAlchemy==2.0.27",
    "aiohttp-fast-url-dispatcher==0.3.0",
    "aiohttp-zlib-ng==0.3.1",
    "aiohttp_cors==0.7.0",
    "fnv-hash-fast==0.5.0",
    "ifaddr==0.2.0",
    "janus==1.0.0",
    "psutil-home-assistant==0.0.1",
    "securetar==2024.2.1",
]
VENV_ENV = "TUIMETER_HA_VENV"
INSTALL_COMMAND = "python3 -m tests.home_assistant_setup"


def venv() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get(VENV_ENV) or cache / "tuimeter" / f"home-assistant-{VERSION}")


def _stamp_text() -> str:
    return hashlib.sha256("\n".join([sys.version, *FIRST, *REQUIREMENTS]).encode()).hexdigest()


def hass() -> Path | None:
    """The `hass` of a complete install (its stamp matches these requirements), or None."""
    folder = venv()
    stamp = folder / ".tuimeter-installed"
    exe = folder / "bin" / "hass"
    if exe.exists() and stamp.exists() and stamp.read_text().strip() == _stamp_text():
        return exe
    return None


def install() -> int:
    if hass() is not None:
        print(f"Home Assistant {VERSION} is installed in {venv()}")
        return 0
    folder = venv()
    print(f"installing Home Assistant {VERSION} in {folder} (about 4 minutes, 700 MB)", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    try:
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run([*pip, *FIRST], check=True)
        constraints = subprocess.run(
            [str(folder / "bin" / "python"), "-c",
             "import homeassistant, os; print(os.path.join(os.path.dirname(homeassistant.__file__), "
             "'package_constraints.txt'))"], check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run([*pip, "-c", constraints, *REQUIREMENTS], check=True)
    except subprocess.CalledProcessError as exc:
        print(f"installing Home Assistant failed ({exc}); run {INSTALL_COMMAND} again", file=sys.stderr)
        return 1
    (folder / ".tuimeter-installed").write_text(_stamp_text() + "\n")
    print(f"Home Assistant {VERSION} installed in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(install())
