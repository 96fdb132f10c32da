# Sourced on a lent device (the device tool) before running Antiphon from this source tree: the Python
# packages the device lacks from .carry/wheels and .carry/wheels-server (py-spy's wheel too, for
# gil_profile.sh), the package metadata the server reads its version from, and libopus alone on the
# library path.
shopt -s nullglob
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .carry/wheels/*.whl \
  .carry/wheels-server/*.whl
mkdir -p /tmp/pkg/antiphon
for room in server models client; do ln -sfn "$PWD/$room" /tmp/pkg/antiphon/$room; done
# the server names its version from the package metadata: describe the source tree as installed
version=$(python3 -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
mkdir -p "/tmp/site/antiphon-$version.dist-info"
printf 'Metadata-Version: 2.1\nName: antiphon\nVersion: %s\n' "$version" > "/tmp/site/antiphon-$version.dist-info/METADATA"
mkdir -p /tmp/opus && ln -sfn "$PWD/.carry/lib/libopus.so.0" /tmp/opus/libopus.so.0  # libopus alone
export PYTHONPATH=/tmp/site:/tmp/pkg PYTHONUNBUFFERED=1 PATH=/tmp/site/bin:$PATH
export LD_LIBRARY_PATH=/tmp/opus${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# For scripts that run several measurements in one call (gpu_all.sh, gpu_compiled.sh).
step() {  # NAME SECONDS COMMAND...: one measurement, bounded, its failure reported and passed over
  local name=$1 seconds=$2 status=0
  shift 2
  local started=$SECONDS
  timeout "$seconds" "$@" || status=$?
  echo "$name: $((SECONDS - started)) s, exit $status"
  return $status
}
