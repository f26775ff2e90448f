using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU.Backends.PTX;

namespace SmoothCache.Kernels;

/// <summary>
/// ILGPU writes every module for the architecture it knows (its <c>.target</c> line), which cannot name
/// Hopper's architecture-specific features: <c>wgmma</c> assembles only for <c>sm_90a</c>. A kernel that
/// uses them is compiled by ILGPU as usual and has its target line replaced before the driver assembles it.
/// ILGPU keeps the PTX text in a read-only property, so the replacement goes through its backing field;
/// <see cref="Retarget(PTXCompiledKernel, string, int, bool)"/> throws if a later ILGPU stores it elsewhere.
/// The same edit makes a kernel wait for the grids before it (<c>griddepcontrol</c>, sm_90 and newer), so that
/// a recording may launch it while they run (<see cref="Backend.DependentLaunches"/>).
/// </summary>
public static partial class PtxTarget
{
    private static readonly FieldInfo? Assembly =
        typeof(PTXCompiledKernel).GetField("<PTXAssembly>k__BackingField", BindingFlags.Instance | BindingFlags.NonPublic);

    /// <summary>Hopper with its architecture-specific instructions (wgmma): compute capability 9.0 only.</summary>
    public const string Hopper = "sm_90a";

    /// <summary>The instructions a kernel begins with to wait for the grids before it and then let the grids after it
    /// launch (see <c>waitForPrerequisiteGrids</c> of <see cref="Retarget(string, string, int, bool)"/>). A kernel with
    /// work that touches no memory the grid before may write (an L2 prefetch of weights) emits them itself after it.</summary>
    public const string WaitForPrerequisiteGrids = "griddepcontrol.wait; griddepcontrol.launch_dependents;";

    /// <summary>Every other kernel on a compute capability 9.0 or newer GPU: the oldest target with <c>griddepcontrol</c>.</summary>
    public const string DependentLaunch = "sm_90";

    [GeneratedRegex(@"^\.target [^\r\n]*", RegexOptions.Multiline)]
    private static partial Regex TargetLine();

    [GeneratedRegex(@"\.extern \.shared \.align \d+ \.b8 __dyn_shared_alloca\[\]")]
    private static partial Regex DynamicShared();

    [GeneratedRegex(@"\.entry [^(]*\([^)]*\)")]
    private static partial Regex EntryDeclaration();

    // The entry's declaration, its directives (.reqnctapercluster) and the body's opening brace.
    [GeneratedRegex(@"\.entry [^(]*\([^)]*\)[^{]*\{")]
    private static partial Regex EntryBodyStart();

    /// <summary>The PTX with its <c>.target</c> line naming <paramref name="target"/> (e.g. sm_90a); with
    /// <paramref name="clusterRows"/> &gt; 1 its kernel asks to run in clusters of that many blocks along y
    /// (<c>.reqnctapercluster</c>: an ordinary launch then launches clusters).</summary>
    /// <param name="waitForPrerequisiteGrids">unless the kernel waits itself, its first instructions wait until the grids it depends on have
    /// finished and their writes are visible (<c>griddepcontrol.wait</c>), then let the grids that depend on it be
    /// launched (<c>griddepcontrol.launch_dependents</c>): with an ordinary launch the wait returns at once; launched
    /// through a programmatic dependency (<see cref="CudaGraph"/>), the kernel's blocks are scheduled while the grid
    /// before it runs and start the moment it is done. The target must be sm_90 or newer.</param>
    public static string Retarget(string ptx, string target, int clusterRows = 1, bool waitForPrerequisiteGrids = false)
    {
        if (!TargetLine().IsMatch(ptx)) throw new ArgumentException("PTX text has no .target line");
        ptx = TargetLine().Replace(ptx, $".target {target}", 1);
        if (clusterRows > 1)
        {
            if (!EntryDeclaration().IsMatch(ptx)) throw new ArgumentException("PTX text has no .entry declaration");
            ptx = EntryDeclaration().Replace(ptx, m => $"{m.Value}\n.reqnctapercluster 1, {clusterRows}, 1", 1);
        }
        if (waitForPrerequisiteGrids)
        {
            if (!HasGridDependencyControl(target))
                throw new ArgumentException($"griddepcontrol needs target sm_90 or newer, not {target}");
            // Before anything else, reads of the parameters included: nothing the kernel does can race the grid before it.
            if (!EntryBodyStart().IsMatch(ptx)) throw new ArgumentException("PTX text has no .entry body");
            // A kernel that waits itself (after its prefetches) keeps its own.
            if (!ptx.Contains("griddepcontrol.wait", StringComparison.Ordinal))
                ptx = EntryBodyStart().Replace(ptx, m => $"{m.Value}\n\t{WaitForPrerequisiteGrids}", 1);
        }
        // Dynamic shared memory starts 1024-byte aligned: swizzled wgmma and TMA layouts repeat in atoms of up to 1 KB.
        return DynamicShared().Replace(ptx, ".extern .shared .align 1024 .b8 __dyn_shared_alloca[]", 1);
    }

    private static bool HasGridDependencyControl(string target) =>
        target.StartsWith("sm_", StringComparison.Ordinal) && int.TryParse(target.AsSpan(3).TrimEnd('a'), out int sm) && sm >= 90;

    /// <summary>Retargets an ILGPU-compiled kernel in place, before it is loaded.</summary>
    public static void Retarget(PTXCompiledKernel kernel, string target, int clusterRows = 1, bool waitForPrerequisiteGrids = false)
    {
        if (Assembly is null)
            throw new InvalidOperationException(
                $"this ILGPU ({typeof(PTXCompiledKernel).Assembly.GetName().Version}) keeps PTXCompiledKernel's text elsewhere: " +
                $"cannot retarget a kernel to {target}");
        Assembly.SetValue(kernel, Retarget(kernel.PTXAssembly, target, clusterRows, waitForPrerequisiteGrids));
    }
}
