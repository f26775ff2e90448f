#!/bin/bash
# The NuGet packages as a user meets them: packs the four libraries and the smoothcache tool (a version of its own,
# so that no cached package stands in), then, in a folder outside this repository,
#   1. builds samples/HelloDiT/Program.cs against SmoothCache.ILGPU.Sampling and .Caching and runs it (the embedded
#      model and the schedules must arrive in its output folder with the packages);
#   2. installs SmoothCache.ILGPU.Cli into a tool path and runs `smoothcache inspect` and a 2-step `generate`.
# Usage, from the repository root: bash scripts/package-check.sh [work folder]. Exits 1 at the first step that fails.
# Needs the packages the solution restores (ILGPU, SkiaSharp, ...) in the NuGet cache or from nuget.org.
set -euo pipefail
ROOT=$(pwd)
WORK=${1:-$(mktemp -d)}
VERSION=0.1.0-check.$(date +%Y%m%d%H%M%S)
mkdir -p "$WORK"
# This version's packages leave the NuGet cache with the script.
trap 'rm -rf "$HOME/.nuget/packages/smoothcache.ilgpu."*/"$VERSION"; rmdir "$HOME/.nuget/packages/smoothcache.ilgpu."* 2>/dev/null' EXIT

echo "== pack $VERSION into $WORK/packages"
# Packed from a copy of the working tree (tracked and untracked files, not bin/ or obj/): a pack in place would rebuild
# the checkout's own Release output at this throwaway version.
mkdir -p "$WORK/src"
git -C "$ROOT" ls-files -co --exclude-standard -z | tar -C "$ROOT" --null -T - -cf - | tar -C "$WORK/src" -xf -
dotnet pack "$WORK/src/SmoothCache.ILGPU.sln" -c Release -p:Version="$VERSION" -o "$WORK/packages" > "$WORK/pack.log" 2>&1 \
    || { tail -n 30 "$WORK/pack.log"; exit 1; }
ls "$WORK/packages"

echo "== a program on the library packages (samples/HelloDiT/Program.cs)"
mkdir -p "$WORK/consumer"
cp "$ROOT/samples/HelloDiT/Program.cs" "$WORK/consumer/"
cat > "$WORK/consumer/Consumer.csproj" <<CSPROJ
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <ImplicitUsings>enable</ImplicitUsings>
    <Nullable>enable</Nullable>
    <RestoreAdditionalProjectSources>$WORK/packages</RestoreAdditionalProjectSources>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="SmoothCache.ILGPU.Sampling" Version="$VERSION" />
    <PackageReference Include="SmoothCache.ILGPU.Caching" Version="$VERSION" />
  </ItemGroup>
</Project>
CSPROJ
dotnet build "$WORK/consumer" -c Release -o "$WORK/consumer/out" > "$WORK/consumer.log" 2>&1 \
    || { tail -n 30 "$WORK/consumer.log"; exit 1; }
for f in models/dit-digits/transformer/config.json schedules/dit-digits/ddim-50-a0.15.json; do
    [ -f "$WORK/consumer/out/$f" ] || { echo "FAIL: $f did not arrive with the packages"; exit 1; }
done
dotnet "$WORK/consumer/out/Consumer.dll"

echo "== the smoothcache tool"
dotnet tool install --tool-path "$WORK/tool" --add-source "$WORK/packages" SmoothCache.ILGPU.Cli --version "$VERSION" > "$WORK/tool.log" 2>&1 \
    || { tail -n 30 "$WORK/tool.log"; exit 1; }
cd "$WORK"    # no models/ here: the tool must find its own
"$WORK/tool/smoothcache" inspect > "$WORK/inspect.txt"
head -n 4 "$WORK/inspect.txt"
"$WORK/tool/smoothcache" generate --device cpu --steps 2 --labels 7 --out "$WORK/seven.png"
[ -s "$WORK/seven.png" ] || { echo "FAIL: generate wrote no PNG"; exit 1; }
echo "PASS: packages in $WORK/packages"
