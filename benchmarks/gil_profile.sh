#!/usr/bin/env bash
# Which of the server's threads hold Python's interpreter lock, and for what share of the time, while
# `antiphon bench --server` streams N sessions through it: py-spy samples only the thread holding the lock.
#   bash benchmarks/gil_profile.sh SESSIONS SECONDS [BENCH-OPTIONS...]   (needs py-spy: pip install py-spy)
# On a lent GPU: `source benchmarks/device_env.sh && bash benchmarks/gil_profile.sh 128 12 --model moshi-7b
# --random-weights --device cuda --context-frames 1500 --client-processes 12` (carry .carry).
# Prints the share of wall time each thread held the lock and the functions the event loop spent it in
# (without the loop's own frames, which every sample holds).
set -euo pipefail
sessions=${1:-2}
seconds=${2:-30}
shift 2 || shift $#
work=$(mktemp -d)
python3 -m antiphon.server bench --sessions "$sessions" --seconds "$seconds" --server --client-processes 1 \
  --out "$work/bench" "$@" > "$work/bench.out" 2>&1 &
bench=$!
streaming() {  # the server is up and has stepped a frame
  local server port
  server=$(pgrep -f "antiphon.server serve" | head -n 1) || return 1
  port=$(ps -o args= -p "$server" | sed 's/.*--port \([0-9]*\).*/\1/')
  python3 -c "import sys, urllib.request as u; sys.exit('antiphon_frames_total 0.0' in
    u.urlopen('http://127.0.0.1:$port/metrics').read().decode())" 2> /dev/null
}
until streaming; do sleep 0.5; done
server=$(pgrep -f "antiphon.server serve" | head -n 1)
duration=$(python3 -c "print(max(1, int($seconds * 0.6)))")
py-spy record --pid "$server" --gil --threads --format raw --rate 500 --duration "$duration" \
  --output "$work/profile.txt" > /dev/null 2>&1
wait $bench
python3 - "$work/profile.txt" "$duration" <<'PYTHON'
import collections, re, sys
path, seconds = sys.argv[1], float(sys.argv[2])
threads, loop = collections.Counter(), collections.Counter()
for line in open(path):
    stack, count = line.rstrip().rsplit(" ", 1)
    frames = stack.split(";")
    name = re.sub(r"thread \(\d+\): ", "", frames[0]).strip()
    name = re.sub(r"_\d+$", "", name)  # one row for each pool
    threads[name] += int(count)
    if name == "MainThread":
        for function in {re.match(r"\s*(\S+ \([^:]+)", f).group(1) for f in frames[1:] if re.match(r"\s*\S+ \(", f)}:
            loop[function] += int(count)
samples = 500 * seconds
print("| thread | share of wall time holding the GIL |\n|---|---|")
for name, count in threads.most_common():
    print(f"| {name} | {100 * count / samples:.1f} % |")
print("\n| event loop: function (file) | share of wall time |\n|---|---|")
for function, count in [(f, c) for f, c in loop.most_common() if c < 0.9 * threads["MainThread"]][:20]:
    print(f"| {function.replace('|', '/')}) | {100 * count / samples:.1f} % |")
PYTHON
tail -n 4 "$work/bench.out"
