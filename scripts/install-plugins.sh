#!/usr/bin/env bash
# Installs pinned PJRT plugins (no-ops when they are already there); see third_party/README.md.
#   ./scripts/install-plugins.sh [cpu|tpu|cuda|all]    (default: cpu, what the test suite runs on)
# cpu:  the CPU plugins (third_party/pjrt-cpu-requirements.txt)
# tpu:  libtpu/libtpu.so from the pinned libtpu wheel (third_party/libtpu-requirements.txt)
# cuda: the CUDA plugin and the CUDA compiler tools (third_party/pjrt-cuda-requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-cpu}"
pip_install() {
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        --no-deps --require-hashes -r "$1"
}
install_tpu() {
    local site want have tmp
    site="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    want="$(sed -n 's/^# LIBTPU_SO_SHA256=//p' third_party/libtpu-requirements.txt)"
    if [[ -f "$site/libtpu/libtpu.so" ]]; then
        have="$(sha256sum "$site/libtpu/libtpu.so" | cut -d' ' -f1)"
        [[ "$have" == "$want" ]] && return 0
    fi
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version 3.12 --platform manylinux_2_31_x86_64 --require-hashes \
        -r third_party/libtpu-requirements.txt -d "$tmp"
    python3 -m zipfile -e "$tmp"/libtpu-*.whl "$tmp/wheel"
    have="$(sha256sum "$tmp/wheel/libtpu/libtpu.so" | cut -d' ' -f1)"
    if [[ "$have" != "$want" ]]; then
        echo "libtpu.so sha256 $have, expected $want (third_party/libtpu-requirements.txt)" >&2
        exit 1
    fi
    mkdir -p "$site/libtpu"
    cp "$tmp/wheel/libtpu/LICENSE" "$site/libtpu/LICENSE"
    mv "$tmp/wheel/libtpu/libtpu.so" "$site/libtpu/libtpu.so"
}
case "$which" in
    cpu) pip_install third_party/pjrt-cpu-requirements.txt ;;
    tpu) install_tpu ;;
    cuda) pip_install third_party/pjrt-cuda-requirements.txt ;;
    all)
        pip_install third_party/pjrt-cpu-requirements.txt
        install_tpu
        pip_install third_party/pjrt-cuda-requirements.txt
        ;;
    *) echo "usage: $0 [cpu|tpu|cuda|all]" >&2; exit 2 ;;
esac
