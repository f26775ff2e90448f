#!/bin/bash
# Kernel work without a GPU: writes the PTX of every CUDA kernel (`smoothcache ptx`, ILGPU's PTX backend
# needs no device), assembles each with NVIDIA's ptxas for the device's architecture and prints its
# registers, spills, stack and shared memory, its SASS instructions (with cuobjdump: $CUOBJDUMP, on PATH or beside
# ptxas) and the seconds ptxas took (the driver spends about as long on a first launch). Exits 1 if ptxas rejects a kernel (bad inline PTX, a
# register used before its declaration, ...). Usage, from the repository root after a Release build:
#   bash scripts/ptxas-check.sh [sm_90] [output folder]
# ptxas: $PTXAS, else ptxas on PATH. Without a CUDA toolkit, Debian's nvidia-cuda-toolkit package (non-free)
# carries one: `apt-get download nvidia-cuda-toolkit && dpkg -x nvidia-cuda-toolkit*.deb cuda`, then
# PTXAS=cuda/usr/bin/ptxas. ILGPU writes PTX ISA 8.0; an older ptxas (CUDA 11.8 reads up to 7.8) gets
# the .version line lowered to what it reads — the kernels use no newer instruction, except the Hopper
# GEMM's wgmma (sm_90a), which only ptxas 12+ assembles: Debian 13's package is CUDA 12.4 (apt-get download
# it with a trixie source list on a Debian 12 machine).
set -u
ARCH=${1:-sm_90}
DIR=${2:-${TMPDIR:-/tmp}/smoothcache-ptx}
PTXAS=${PTXAS:-$(command -v ptxas)}
if [ -z "$PTXAS" ]; then
    echo "ptxas not found: set PTXAS (see the comment at the top of $0)" >&2
    exit 2
fi
rm -rf "$DIR"
mkdir -p "$DIR"
dotnet Tools/SmoothCache.Cli/bin/Release/net10.0/smoothcache.dll ptx --out "$DIR" > /dev/null || exit 1
# The newest PTX ISA this ptxas reads, from the error it gives a newer one.
MAX=$(printf '.version 99.9\n.target %s\n.address_size 64\n' "$ARCH" | "$PTXAS" -arch="$ARCH" - -o /dev/null 2>&1 | grep -o "current version is '[0-9.]*'" | grep -o "[0-9][0-9.]*")
failed=0
CUOBJDUMP=${CUOBJDUMP:-$(command -v cuobjdump || { [ -x "$(dirname "$PTXAS")/cuobjdump" ] && echo "$(dirname "$PTXAS")/cuobjdump"; })}
printf "%-72s %5s %6s %6s %6s %7s %6s %7s\n" kernel regs stack spillS spillL smem sass ptxas-s
for f in "$DIR"/*.ptx; do
    src="$f"
    if [ -n "$MAX" ]; then
        src="$f.asm"
        sed "s/^\.version [0-9.]*/.version $MAX/" "$f" > "$src"
    fi
    # A module retargeted to an architecture-specific target (sm_90a: wgmma) is assembled for that target,
    # which needs ptxas 12 or newer: an older one skips it (CUDA 11.8, Debian 12's package).
    arch=$(grep -o "^\.target sm_[0-9]*a" "$f" | cut -d' ' -f2)
    if [ -n "$arch" ] && ! printf '.version 7.8\n.target %s\n.address_size 64\n' "$arch" | "$PTXAS" -arch="$arch" - -o /dev/null > /dev/null 2>&1; then
        printf "%-72s %s\n" "$(basename "$f" .ptx)" "skipped: this ptxas cannot assemble $arch"
        continue
    fi
    start=$EPOCHREALTIME
    if ! info=$("$PTXAS" -arch="${arch:-$ARCH}" -v "$src" -o "$f.cubin" 2>&1); then
        echo "FAIL $(basename "$f" .ptx)"
        echo "$info" | grep -v "^ptxas info" | head -n 10
        failed=1
        continue
    fi
    seconds=$(awk -v end="$EPOCHREALTIME" -v start="$start" 'BEGIN { print end - start }')
    # SASS instructions (what ptxas made of the kernel), where cuobjdump is at hand.
    sass="-"
    [ -n "$CUOBJDUMP" ] && sass=$("$CUOBJDUMP" -sass "$f.cubin" | grep -cE '^\s+/\*[0-9a-f]{4,5}\*/')
    regs=$(echo "$info" | grep -o "Used [0-9]* registers" | head -1 | grep -o "[0-9]*")
    smem=$(echo "$info" | grep -o "[0-9]* bytes smem" | head -1 | grep -o "^[0-9]*")
    stack=$(echo "$info" | grep -o "[0-9]* bytes stack frame" | head -1 | grep -o "^[0-9]*")
    spills=$(echo "$info" | grep -o "[0-9]* bytes spill stores" | head -1 | grep -o "^[0-9]*")
    loads=$(echo "$info" | grep -o "[0-9]* bytes spill loads" | head -1 | grep -o "^[0-9]*")
    # ptxas says when it had to serialise wgmma (C7515 and the like): a performance bug to fix.
    echo "$info" | grep -i "wgmma" | sed 's/^/    /'
    printf "%-72s %5s %6s %6s %6s %7s %6s %7.2f\n" "$(basename "$f" .ptx)" "${regs:-?}" "${stack:-0}" "${spills:-0}" "${loads:-0}" "${smem:-0}" "$sass" "$seconds"
done
exit $failed
