"""Secrets at rest: the generated secret-key file is private from the moment it exists, and one key wins a race."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from meetbot.secrets_at_rest import PREFIX, SecretUnreadable, seal, unseal
from meetbot.settings import Settings

MAKE_KEY = "import os, sys; os.umask(0); from meetbot.settings import Settings; " + (
    "print(Settings(data_dir=sys.argv[1]).resolved_secret_key())"
)


def test_the_key_file_is_created_0600_not_chmod_ed_afterwards(tmp_path: Path) -> None:
    """Traced system calls: every file created in the data dir is created with mode 0600 (even under umask 0), and
    no permission is changed later, so no other user could ever have opened it."""
    data = tmp_path / "data"
    trace = tmp_path / "trace"
    done = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=open,openat,creat,chmod,fchmod,fchmodat",
         sys.executable, "-c", MAKE_KEY, str(data)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    key = done.stdout.strip()
    in_data = [line for line in trace.read_text().splitlines() if str(data) in line or "chmod(" in line]
    created = [line for line in in_data if "O_CREAT" in line]
    assert created and all(re.search(r", 0600\) = \d+$", line) for line in created), in_data
    assert not [line for line in in_data if "chmod" in line], in_data
    path = data / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) >= 64
    assert [p.name for p in data.iterdir()] == ["secret_key"]  # no draft left behind
    assert Settings(data_dir=data).resolved_secret_key() == key  # kept: the next start signs with the same key


def test_processes_racing_to_generate_the_key_all_get_the_same_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start = threading.Barrier(6)
    keys: list[str] = []

    def make() -> None:
        start.wait()
        run = subprocess.run([sys.executable, "-c", MAKE_KEY, str(data)], capture_output=True, text=True, timeout=60)
        keys.append(run.stdout.strip())

    threads = [threading.Thread(target=make) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 6 and len(set(keys)) == 1 and keys[0]
    assert (data / "secret_key").read_text() == keys[0]


def test_a_configured_key_writes_no_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key="configured-" + "k" * 40)
    assert settings.resolved_secret_key() == "configured-" + "k" * 40
    assert not (tmp_path / "data" / "secret_key").exists()


# --- meeting passwords sealed at rest -------------------------------------------------------------------------------


def test_a_sealed_password_opens_with_the_current_or_a_previous_key_only() -> None:
    sealed = seal("4242-passcode", "old-secret-" + "x" * 32)
    assert sealed.startswith(PREFIX) and "4242" not in sealed
    assert seal(sealed, "another-key") == sealed  # never sealed twice
    rotated = Settings(secret_key="new-secret-" + "y" * 32, previous_secret_keys="old-secret-" + "x" * 32)
    assert unseal(sealed, rotated.secret_keys()) == "4242-passcode"
    assert unseal("plain from before sealing", rotated.secret_keys()) == "plain from before sealing"
    with pytest.raises(SecretUnreadable):
        unseal(sealed, Settings(secret_key="new-secret-" + "y" * 32).secret_keys())
