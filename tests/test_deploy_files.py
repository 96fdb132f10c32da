"""The deployment files pass their linters: hadolint for the Dockerfile, the Kubernetes schemas for
deploy/k8s (both installed by the test extra, both offline)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).parent / name)


def test_dockerfile_passes_hadolint():
    result = subprocess.run([tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_manifests_match_the_schemas():
    manifests = sorted(str(path) for path in (ROOT / "deploy" / "k8s").glob("*.yaml"))
    assert len(manifests) >= 3
    result = subprocess.run([tool("kubernetes-validate"), "--strict", *manifests], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(manifests)
