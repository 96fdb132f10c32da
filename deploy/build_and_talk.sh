#!/usr/bin/env bash
# Builds Antiphon's image for real and talks to it over 127.0.0.1, where no image registry is reachable:
#   sudo deploy/build_and_talk.sh            (needs buildah, podman with runc, debootstrap)
# 1. a stand-in base: a minimal Debian from debootstrap plus python3 and venv, imported as an image;
# 2. `buildah bud` of the project's Dockerfile on it (BASE_IMAGE build argument, the host's CA bundle
#    mounted for pip, and pip's own configured wheel folder, if any, mounted and passed as PIP_FIND_LINKS);
# 3. the image run with podman (host network, CPU, test-small random weights), a session through the
#    Python client (handshake, audio back, text back), then `podman stop` (SIGTERM) during a live session:
#    the client must read the shutdown notice and the container must exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${ANTIPHON_IMAGE_WORK:-/tmp/antiphon-image}
port=${ANTIPHON_IMAGE_PORT:-18998}
mkdir -p "$work"
export CONTAINERS_CONF="$work/containers.conf"
cat > "$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF

if ! podman image exists localhost/antiphon-base:bookworm; then
  echo "== stand-in base image (debootstrap)"
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$work/rootfs" >/dev/null
  tar -C "$work/rootfs" -c . | podman import - localhost/antiphon-base:bookworm >/dev/null
fi

echo "== build"
mounts=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
find_links=$(python3 -m pip config get global.find-links 2>/dev/null || true)
build_args=(--build-arg BASE_IMAGE=localhost/antiphon-base:bookworm)
if [[ -n "$find_links" && -d "$find_links" ]]; then
  mounts+=(-v "$find_links:$find_links:ro")
  build_args+=(--build-arg "PIP_FIND_LINKS=$find_links")
fi
time buildah bud --isolation chroot --format docker --layers "${mounts[@]}" "${build_args[@]}" -t localhost/antiphon:test . \
  | grep -E "^(STEP|COMMIT|installed)" || true
podman image exists localhost/antiphon:test

echo "== run and talk"
podman rm -f antiphon-test >/dev/null 2>&1 || true
podman run -d --name antiphon-test --network host localhost/antiphon:test \
  --model test-small --random-weights --device cpu --slots 2 --grace-seconds 5 --port "$port" >/dev/null
trap 'podman rm -f antiphon-test >/dev/null 2>&1 || true' EXIT
for _ in $(seq 240); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
.venv/bin/python - "$port" <<'PY'
import asyncio, subprocess, sys
import numpy as np
from antiphon.client.chat import Conversation, chat_url, talk
from websockets.asyncio.client import connect
base = f"ws://127.0.0.1:{sys.argv[1]}"
t = np.arange(24000 * 3) / 24000
speech = (0.2 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
reply = asyncio.run(talk(chat_url(base), speech))
print(f"handshake {reply.handshake!r}, {len(reply.pcm) / 24000:.2f} s of audio back, "
      f"{len(reply.text)} text pieces, errors {reply.errors}")
assert reply.handshake and len(reply.pcm) > 2 * 24000 and reply.text and not reply.errors

async def stop_during_a_session():
    async with connect(chat_url(base)) as ws:
        conversation = Conversation(ws)
        receiving = asyncio.ensure_future(conversation.receive_all())
        await conversation.started.wait()
        streaming = asyncio.ensure_future(conversation.stream(np.tile(speech, 5)))
        await asyncio.sleep(1.0)
        stop = await asyncio.create_subprocess_exec("podman", "stop", "-t", "30", "antiphon-test")
        reply = await receiving
        streaming.cancel()
        await stop.wait()
        return reply

reply = asyncio.run(stop_during_a_session())
print(f"during stop: errors {reply.errors}, close code {reply.close_code}")
assert any("shutting down" in error for error in reply.errors) and reply.close_code == 1001
PY
code=$(podman inspect --format '{{.State.ExitCode}}' antiphon-test)
echo "container exit code after SIGTERM: $code"
podman logs antiphon-test 2>&1 | grep -E "shutting down|serving|RANDOM" | head -5
[[ "$code" == 0 ]]
echo "build and talk: passed"
