# Sourced by the training recipes on a lent device: espeak-ng from .carry/, then Antiphon from this source
# tree with the Python packages the device lacks (benchmarks/device_env.sh).
# .carry/debs holds Debian's espeak-ng packages (apt-get download espeak-ng libespeak-ng1 espeak-ng-data
# libpcaudio0 libsonic0), .carry/lib the shared libraries libespeak-ng and libpcaudio load that the
# device image lacks (ALSA, PulseAudio, sndfile and codecs, X11 client: copied from this machine after
# `ldd`), .carry/wheels the Python packages the device lacks (moshi, sphn, websockets).
mkdir -p /tmp/espeak
for deb in .carry/debs/*.deb; do dpkg -x "$deb" /tmp/espeak; done
espeak_libs=/tmp/espeak/usr/lib/x86_64-linux-gnu:$PWD/.carry/lib
export ESPEAK_DATA_PATH=/tmp/espeak/usr/lib/x86_64-linux-gnu/espeak-ng-data
source benchmarks/device_env.sh
antiphon() { python3 -m antiphon.server "$@"; }
