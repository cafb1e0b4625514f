"""The `sugar` entry point: a mistyped command or option is a usage message and exit 2, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.parametrize(("args", "message"), [(["nosuch"], "No such command 'nosuch'"),
                                                (["pretrain", "--nosuch"], "No such option: --nosuch")])
def test_a_usage_error_prints_a_message_and_exits_2(args, message):
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result = subprocess.run([sys.executable, "-m", "sugar.cli", *args], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
