#!/usr/bin/env bash
# A CPU-capable Triton Inference Server from the package index: the tritonserver that the
# nvidia-pytriton wheel bundles (Triton 2.51, Python backend only: no onnxruntime or TensorRT
# backend). The wheel is unpacked, not installed: pytriton itself pins numpy<2. The Python backend
# runs its models in this interpreter's environment (onnxruntime, numpy).
# Usage: bash scripts/get_tritonserver.sh [DEST]   (default: build-tritonserver)
# The server home is then DEST/pytriton/tritonserver (bin/tritonserver, backends/); the tests look
# there or at $TRITONSERVER_HOME. Linux x86_64, glibc >= 2.35.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-build-tritonserver}
version=${PYTRITON_VERSION:-0.7.0}
home="$dest/pytriton/tritonserver"
if [ -x "$home/bin/tritonserver" ] && [ -x "$home/backends/python/triton_python_backend_stub" ]; then
  echo "tritonserver already in $home"
  exit 0
fi
mkdir -p "$dest"
python3 -m pip download -q --disable-pip-version-check --no-deps -d "$dest" "nvidia-pytriton==$version"
# the server, its bundled libraries (RPATH $ORIGIN/../../../nvidia_pytriton.libs) and nothing else
python3 - "$dest" <<'PY'
import sys, zipfile, pathlib
dest = pathlib.Path(sys.argv[1])
wheel = next(dest.glob("nvidia_pytriton-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.filename.startswith(("pytriton/tritonserver/", "nvidia_pytriton.libs/")):
            z.extract(info, dest)
wheel.unlink()
PY
# the Python backend runs models through a stub built for the interpreter's minor version
py=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
cp "$home/python_backend_stubs/$py/triton_python_backend_stub" "$home/backends/python/"
chmod +x "$home/bin/tritonserver" "$home/backends/python/triton_python_backend_stub"
echo "tritonserver in $home"
