#!/usr/bin/env bash
# Call 1's command on the GPU machine (prepare.sh prints it): about 10 s that say, before the long call, whether the
# bundle unpacks, whether our programs find their libraries (cuBLAS comes from the machine's toolkit or torch's nvidia
# wheels; run.sh looks in the same places) and whether `winnow info --device cuda` sees the GPU. Prints everything;
# writes nothing that run.sh needs (it unpacks again).
set -uo pipefail
W=/tmp/w
rm -rf "$W" && timeout -k 5 30 python3 -m tarfile -e bench/device/payload/bundle.tar.xz "$W" || { echo "smoke: the bundle did not unpack"; exit 1; }
libs="$W/lib:/usr/local/cuda/lib64"
wheels=$(timeout 30 python3 -c "import glob, os, nvidia; print(':'.join(sorted(glob.glob(os.path.join(list(nvidia.__path__)[0], '*', 'lib')))))" 2>/dev/null)
echo "== nvidia-smi"; timeout -k 5 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== libraries not found with the toolkit alone:"; LD_LIBRARY_PATH=$libs ldd "$W/bin/winnow" | grep 'not found' || echo "(none)"
[ -n "$wheels" ] && { echo "== ... with torch's nvidia wheels too:"; LD_LIBRARY_PATH=$libs:$wheels ldd "$W/bin/winnow" | grep 'not found' || echo "(none)"; }
echo "== winnow info --device cuda"
LD_LIBRARY_PATH=$libs${wheels:+:$wheels} timeout -k 5 30 "$W/bin/winnow" info -m bench/device/payload/fixtures/tiny-llama.gguf --device cuda 2>&1 | tail -15
