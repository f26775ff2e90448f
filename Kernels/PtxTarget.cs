using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU.Backends.PTX;

namespace SmoothCache.Kernels;

/// <summary>
/// ILGPU writes every module for the architecture it knows (its <c>.target</c> line), which cannot name
/// Hopper's architecture-specific features: <c>wgmma</c> assembles only for <c>sm_90a</c>. A kernel that
/// uses them is compiled by ILGPU as usual and has its target line replaced before the driver assembles it.
/// ILGPU keeps the PTX text in a read-only property, so the replacement goes through its backing field;
/// <see cref="Retarget(PTXCompiledKernel, string)"/> throws if a later ILGPU stores it elsewhere.
/// </summary>
public static partial class PtxTarget
{
    private static readonly FieldInfo? Assembly =
        typeof(PTXCompiledKernel).GetField("<PTXAssembly>k__BackingField", BindingFlags.Instance | BindingFlags.NonPublic);

    /// <summary>Hopper with its architecture-specific instructions (wgmma): compute capability 9.0 only.</summary>
    public const string Hopper = "sm_90a";

    [GeneratedRegex(@"^\.target [^\r\n]*", RegexOptions.Multiline)]
    private static partial Regex TargetLine();

    [GeneratedRegex(@"\.extern \.shared \.align \d+ \.b8 __dyn_shared_alloca\[\]")]
    private static partial Regex DynamicShared();

    [GeneratedRegex(@"\.entry [^(]*\([^)]*\)")]
    private static partial Regex EntryDeclaration();

    /// <summary>The PTX with its <c>.target</c> line naming <paramref name="target"/> (e.g. sm_90a); with
    /// <paramref name="clusterRows"/> &gt; 1 its kernel asks to run in clusters of that many blocks along y
    /// (<c>.reqnctapercluster</c>: an ordinary launch then launches clusters).</summary>
    public static string Retarget(string ptx, string target, int clusterRows = 1)
    {
        if (!TargetLine().IsMatch(ptx)) throw new ArgumentException("PTX text has no .target line");
        ptx = TargetLine().Replace(ptx, $".target {target}", 1);
        if (clusterRows > 1)
        {
            if (!EntryDeclaration().IsMatch(ptx)) throw new ArgumentException("PTX text has no .entry declaration");
            ptx = EntryDeclaration().Replace(ptx, m => $"{m.Value}\n.reqnctapercluster 1, {clusterRows}, 1", 1);
        }
        // Dynamic shared memory starts 1024-byte aligned: swizzled wgmma and TMA layouts repeat in atoms of up to 1 KB.
        return DynamicShared().Replace(ptx, ".extern .shared .align 1024 .b8 __dyn_shared_alloca[]", 1);
    }

    /// <summary>Retargets an ILGPU-compiled kernel in place, before it is loaded.</summary>
    public static void Retarget(PTXCompiledKernel kernel, string target, int clusterRows = 1)
    {
        if (Assembly is null)
            throw new InvalidOperationException(
                $"this ILGPU ({typeof(PTXCompiledKernel).Assembly.GetName().Version}) keeps PTXCompiledKernel's text elsewhere: " +
                $"cannot retarget a kernel to {target}");
        Assembly.SetValue(kernel, Retarget(kernel.PTXAssembly, target, clusterRows));
    }
}
