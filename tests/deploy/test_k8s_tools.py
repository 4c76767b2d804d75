"""The installer of helm and kubeconform (lifecycle_devstack.k8s_tools), with a stand-in `go` that records its calls
instead of building: what it installs, where, and that a cached binary is reused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from lifecycle_devstack import k8s_tools


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `go` first on PATH that logs `GOBIN args` and writes the named tool into GOBIN, as `go install` does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "go.log"
    go = bin_dir / "go"
    go.write_text(f"""#!/bin/sh
echo "$GOBIN $*" >> {log}
target="${{2%@*}}"
printf '#!/bin/sh\\n' > "$GOBIN/${{target##*/}}"
chmod +x "$GOBIN/${{target##*/}}"
""")
    go.chmod(go.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LIFECYCLE_TOOLS_CACHE", str(tmp_path / "cache"))
    return log


def test_installs_each_pinned_tool_into_its_own_cache_folder_with_gobin(fake_go: Path, tmp_path: Path):
    helm = k8s_tools.ensure("helm")
    kubeconform = k8s_tools.ensure("kubeconform")
    cache = tmp_path / "cache" / "go-tools"
    assert helm == cache / "helm-v3.21.4" / "helm" and helm.is_file()
    assert kubeconform == cache / "kubeconform-v0.8.0" / "kubeconform" and kubeconform.is_file()
    assert fake_go.read_text().splitlines() == [
        f"{cache / 'helm-v3.21.4'} install helm.sh/helm/v3/cmd/helm@v3.21.4",
        f"{cache / 'kubeconform-v0.8.0'} install github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0",
    ]


def test_a_cached_tool_is_reused_without_go(fake_go: Path):
    first = k8s_tools.ensure("helm")
    fake_go.unlink()
    assert k8s_tools.ensure("helm") == first
    assert not fake_go.exists()  # go was not called again


def test_the_cache_is_outside_the_repository_by_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("LIFECYCLE_TOOLS_CACHE", raising=False)
    repository = Path(__file__).resolve().parents[2]
    assert not k8s_tools.binary_path("helm").is_relative_to(repository)
    assert k8s_tools.binary_path("helm").is_relative_to(Path.home() / ".cache" / "lifecycle")
