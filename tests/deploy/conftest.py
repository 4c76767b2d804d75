"""The Helm chart's checks run helm and kubeconform, `go install`ed once into ~/.cache/lifecycle (lifecycle_devstack
.k8s_tools) and reused by later runs. Nothing here needs a cluster or the internet beyond the Go module proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lifecycle_devstack import k8s_tools

from tests.support.helm_chart import VALUE_FILES, render


@pytest.fixture(scope="session")
def helm() -> Path:
    return k8s_tools.ensure("helm")


@pytest.fixture(scope="session")
def kubeconform() -> Path:
    return k8s_tools.ensure("kubeconform")


@pytest.fixture(scope="module", params=VALUE_FILES, ids=lambda p: "default" if p is None else p.stem)
def rendered(request: pytest.FixtureRequest, helm: Path) -> list[dict[str, Any]]:
    return render(helm, request.param)
