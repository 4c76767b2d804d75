"""The Helm chart's checks run helm and kubeconform, `go install`ed once into ~/.cache/lifecycle (lifecycle_devstack
.k8s_tools) and reused by later runs. Nothing here needs a cluster or the internet beyond the Go module proxy."""

from __future__ import annotations

from pathlib import Path

import pytest
from lifecycle_devstack import k8s_tools


@pytest.fixture(scope="session")
def helm() -> Path:
    return k8s_tools.ensure("helm")


@pytest.fixture(scope="session")
def kubeconform() -> Path:
    return k8s_tools.ensure("kubeconform")
