#!/usr/bin/env bash
# A current OpenCV (core, imgproc, imgcodecs, dnn) for the C++ fundus-infer, built from the source that
# PyPI's opencv-python sdist carries, so the C++ binary runs the same DNN engine as the Python runtime.
# Debian's libopencv-dev is 4.6, whose DNN convolutions take about twice as long on the shipped model
# (docs/benchmark.md). About 25 minutes on 2 cores; system libjpeg, libpng, libtiff and zlib are used.
#
# Usage: scripts/build_opencv.sh [VERSION] [PREFIX] [shared|static]   (default: 5.1.0.95 /opt/opencv-5.1 shared)
# static: libraries to link into one self-contained binary (scripts/build_release.sh).
# Then:  cmake -S . -B build -DOpenCV_DIR=PREFIX/lib/cmake/opencv5 && cmake --build build -j2
# (OpenCV 4.x installs its package files in PREFIX/lib/cmake/opencv4.)
set -euo pipefail
version=${1:-5.1.0.95}
prefix=${2:-/opt/opencv-5.1}
linkage=${3:-shared}
case $linkage in
  shared) shared_libs=ON ;;
  static) shared_libs=OFF ;;
  *) echo "build_opencv.sh: linkage must be shared or static, got '$linkage'" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --no-deps --no-binary opencv-python "opencv-python==$version" -d "$work"
tar -xzf "$work/opencv_python-$version.tar.gz" -C "$work"
without=()
for feature in IPP ADE OPENCL FFMPEG GTK QT V4L GSTREAMER 1394 OPENEXR JASPER OPENJPEG WEBP AVIF IMGCODEC_HDR EIGEN \
  LAPACK VA VA_INTEL ITT TBB OPENMP KLEIDICV HAL_RVV; do
  without+=("-DWITH_$feature=OFF")
done
cmake -S "$work/opencv_python-$version/opencv" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$prefix" -DBUILD_LIST=core,imgproc,imgcodecs,dnn -DBUILD_SHARED_LIBS=$shared_libs \
  -DBUILD_TESTS=OFF -DBUILD_PERF_TESTS=OFF -DBUILD_EXAMPLES=OFF -DBUILD_opencv_apps=OFF -DBUILD_JAVA=OFF \
  -DBUILD_opencv_python3=OFF -DWITH_PROTOBUF=ON -DBUILD_PROTOBUF=ON \
  -DBUILD_JPEG=OFF -DBUILD_PNG=OFF -DBUILD_TIFF=OFF -DBUILD_ZLIB=OFF -DOPENCV_DOWNLOAD_TRIES_LIST=1 \
  "${without[@]}" >/dev/null
cmake --build "$work/build" -j "$(nproc)"
cmake --install "$work/build"
echo "installed OpenCV $version ($linkage) in $prefix"
