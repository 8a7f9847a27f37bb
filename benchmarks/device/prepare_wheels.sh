#!/usr/bin/env bash
# Download the wheels the device machine lacks (Python 3.12, manylinux x86-64) into .whl/.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
  -d .whl mrcfile starfile gemmi zarr pydantic geomloss
