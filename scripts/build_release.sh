#!/usr/bin/env bash
# The shipped C++ fundus-infer: one archive holding bin/fundus-infer, linked statically against OpenCV 5.1
# (the DNN engine the Python runtime runs; Debian's 4.6 takes about 1.8x as long, docs/benchmark.md), and the
# shipped bundles in share/fundus-vessels/models. The binary needs only the C/C++ runtime and the system's
# libjpeg, libpng, libtiff, zlib and ISA-L. CI builds against Debian's OpenCV 4.6 for correctness; this is the
# build that ships.
#
# Usage: scripts/build_release.sh [OUTDIR]                  (default: dist/)
#   OPENCV_PREFIX  a static OpenCV 5 install (default /opt/opencv-5.1-static; built there by
#                  scripts/build_opencv.sh 5.1.0.95 PREFIX static when missing, about 25 minutes on 2 cores)
#
# Steps, each stopping the script on failure: configure and build in a fresh folder, run the C++ unit tests,
# refuse a binary linked to a shared OpenCV, install into a staging folder, run the installed binary's
# --self-test (every backend against the default bundle's stored reference), then write
# OUTDIR/fundus-infer-VERSION-linux-ARCH.tar.gz and its .sha256 (both atomically).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mkdir -p "${1:-$repo/dist}" && cd "${1:-$repo/dist}" && pwd)
prefix=${OPENCV_PREFIX:-/opt/opencv-5.1-static}
config="$prefix/lib/cmake/opencv5"
if [[ ! -f $config/OpenCVConfig.cmake ]]; then
  echo "build_release.sh: no static OpenCV 5 in $prefix: building it" >&2
  "$repo/scripts/build_opencv.sh" 5.1.0.95 "$prefix" static
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake -S "$repo" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DOpenCV_DIR="$config" >"$work/configure.log" ||
  { cat "$work/configure.log" >&2; exit 1; }
cmake --build "$work/build" -j "$(nproc)" --target fundus-infer fundus-unit-tests
"$work/build/fundus-unit-tests" >"$work/unit-tests.log" || { cat "$work/unit-tests.log" >&2; exit 1; }
if ldd "$work/build/fundus-infer" | grep -q 'libopencv'; then
  echo "build_release.sh: fundus-infer is linked to a shared OpenCV; $prefix must be a static build" >&2
  exit 1
fi
stage="$work/stage"
cmake --install "$work/build" --prefix "$stage" --strip >/dev/null
version=$("$stage/bin/fundus-infer" --version)
echo "$version"
case $version in
  *"OpenCV 5."*) ;;
  *) echo "build_release.sh: the release binary must run OpenCV 5: $version" >&2; exit 1 ;;
esac
# the installed layout finds its bundle beside the binary; FUNDUS_MODEL must not point elsewhere
env -u FUNDUS_MODEL "$stage/bin/fundus-infer" --self-test -o "$work/self-test" >"$work/self-test.log" ||
  { cat "$work/self-test.log" >&2; exit 1; }
cat "$work/self-test.log"
number=$(echo "$version" | awk '{print $2}')
name="fundus-infer-$number-linux-$(uname -m)"
mv "$stage" "$work/$name"
tar -C "$work" -czf "$work/$name.tar.gz" "$name"
(cd "$work" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
for file in "$name.tar.gz" "$name.tar.gz.sha256"; do  # atomically: a temporary beside the target, then a rename
  mv "$work/$file" "$out/$file.tmp" && mv "$out/$file.tmp" "$out/$file"
done
echo "wrote $out/$name.tar.gz"
