# Sourced by the device recipes: espeak-ng and the Python packages the device lacks, from .carry/.
# .carry/debs holds Debian's espeak-ng packages (apt-get download espeak-ng libespeak-ng1 espeak-ng-data
# libpcaudio0 libsonic0), .carry/lib the shared libraries libespeak-ng and libpcaudio load that the
# device image lacks (ALSA, PulseAudio, sndfile and codecs, X11 client: copied from this machine after
# `ldd`), .carry/wheels the Python packages the device lacks (moshi, sphn, websockets).
mkdir -p /tmp/espeak /tmp/pkg/antiphon
for deb in .carry/debs/*.deb; do dpkg -x "$deb" /tmp/espeak; done
espeak_libs=/tmp/espeak/usr/lib/x86_64-linux-gnu:$PWD/.carry/lib
export ESPEAK_DATA_PATH=/tmp/espeak/usr/lib/x86_64-linux-gnu/espeak-ng-data
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .carry/wheels/*.whl
for room in server models client; do ln -sfn "$PWD/$room" /tmp/pkg/antiphon/$room; done
export PYTHONPATH=/tmp/site:/tmp/pkg PYTHONUNBUFFERED=1
antiphon() { python3 -m antiphon.server "$@"; }
