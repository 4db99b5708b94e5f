# Building moorage's wheel, sourced by scripts/install-release.sh (the production
# install) and scripts/test-cgv2.sh (which builds it natively for its emulated guest).

# build_wheel SRC PIP OUTDIR: build the wheel of the checkout SRC with PIP into OUTDIR
# and print its path. From a copy, so the checkout gets no build/ or egg-info and nothing
# stale in an old build/ reaches the wheel.
build_wheel() {
    local src=$1 pip=$2 outdir=$3 copy
    copy=$(mktemp -d)
    tar -C "$src" --exclude=./.git --exclude='./.venv*' --exclude=./build --exclude=./dist \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude=./bench/results \
        --exclude=.mypy_cache --exclude=.ruff_cache --exclude=.pytest_cache -cf - . \
        | tar -C "$copy" -xf -
    if ! "$pip" wheel -q --disable-pip-version-check --no-deps --wheel-dir "$outdir" "$copy" >&2; then
        rm -rf "$copy"
        return 1
    fi
    rm -rf "$copy"
    ls "$outdir"/moorage-*.whl
}
