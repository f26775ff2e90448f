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

    /// <summary>The instruction a kernel begins with to wait for the grids before it (see <c>waitForPrerequisiteGrids</c>
    /// of <see cref="Retarget(string, string, int, bool)"/>). Only the TMA GEMM lets the grid after it launch early
    /// (<c>griddepcontrol.launch_dependents</c>, once all its blocks have issued their last multiplies); after any other
    /// kernel it launches as the kernel's blocks exit. Triggered first thing, as until
    /// the seventeenth session, the next kernel's blocks took multiprocessors' shared memory and registers while this
    /// one's later waves still needed them: replays were 3-13% slower than without dependent launches (H200).</summary>
    public const string WaitForPrerequisiteGrids = "griddepcontrol.wait;";

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
    /// <param name="waitForPrerequisiteGrids">its first instruction waits until the grids it depends on have
    /// finished and their writes are visible (<c>griddepcontrol.wait</c>): with an ordinary launch it returns at once;
    /// launched through a programmatic dependency (<see cref="CudaGraph"/>), the kernel's blocks are launched as the
    /// grid before it exits, without waiting for its completion to be signalled, and start the moment its writes are
    /// visible. The target must be sm_90 or newer.</param>
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
            ptx = EntryBodyStart().Replace(ptx, m => $"{m.Value}\n\t{WaitForPrerequisiteGrids}", 1);
        }
        // Dynamic shared memory starts 1024-byte aligned: swizzled wgmma and TMA layouts repeat in atoms of up to 1 KB.
        return DynamicShared().Replace(ptx, ".extern .shared .align 1024 .b8 __dyn_shared_alloca[]", 1);
    }

    private static bool HasGridDependencyControl(string target) =>
        target.StartsWith("sm_", StringComparison.Ordinal) && int.TryParse(target.AsSpan(3).TrimEnd('a'), out int sm) && sm >= 90;

    /// <summary>Retargets an ILGPU-compiled kernel in place, before it is loaded.</summary>
    public static void Retarget(PTXCompiledKernel kernel, string target, int clusterRows = 1, bool waitForPrerequisiteGrids = false) =>
        Edit(kernel, ptx => Retarget(ptx, target, clusterRows, waitForPrerequisiteGrids), $"retarget a kernel to {target}");

    /// <summary>Whether <paramref name="kernel"/> asks for edits of its PTX (<see cref="PromoteLocalScalarsAttribute"/>,
    /// <see cref="BlocksPerMultiprocessorAttribute"/>).</summary>
    public static bool HasEdits(MethodInfo kernel) =>
        kernel.IsDefined(typeof(PromoteLocalScalarsAttribute), false) || kernel.IsDefined(typeof(BlocksPerMultiprocessorAttribute), false);

    /// <summary>The PTX of <paramref name="kernel"/> with the edits its attributes ask for (before any retargeting);
    /// without <paramref name="promoteLocals"/>, local scalars stay where ILGPU put them (a check of the edit).</summary>
    public static string ApplyEdits(MethodInfo kernel, string ptx, bool promoteLocals = true)
    {
        if (promoteLocals && kernel.IsDefined(typeof(PromoteLocalScalarsAttribute), false)) ptx = PromoteLocalScalars(ptx);
        if (kernel.GetCustomAttribute<BlocksPerMultiprocessorAttribute>() is { } occupancy)
        {
            if (!EntryDeclaration().IsMatch(ptx)) throw new ArgumentException("PTX text has no .entry declaration");
            ptx = EntryDeclaration().Replace(ptx, m => $"{m.Value}\n.maxntid {occupancy.Threads}, 1, 1\n.minnctapersm {occupancy.Blocks}", 1);
        }
        return ptx;
    }

    /// <summary>Replaces an ILGPU-compiled kernel's PTX, before it is loaded, by <paramref name="edit"/>'s result.</summary>
    public static void Edit(PTXCompiledKernel kernel, Func<string, string> edit, string what)
    {
        if (Assembly is null)
            throw new InvalidOperationException(
                $"this ILGPU ({typeof(PTXCompiledKernel).Assembly.GetName().Version}) keeps PTXCompiledKernel's text elsewhere: cannot {what}");
        Assembly.SetValue(kernel, edit(kernel.PTXAssembly));
    }

    [GeneratedRegex(@"^\s*\.local \.align 4 \.b8 __local_depot(\d+)\[4\];\s*$")]
    private static partial Regex ScalarDepot();

    [GeneratedRegex(@"^\s*mov\.b64\s+(%rd\d+), __local_depot(\d+);\s*$")]
    private static partial Regex DepotAddress();

    [GeneratedRegex(@"^\s*ld\.local\.[bfus]32\s+(%\w+), \[(%rd\d+)\];\s*$")]
    private static partial Regex DepotLoad();

    [GeneratedRegex(@"^\s*st\.local\.[bfus]32\s+\[(%rd\d+)\], ([^;,\s]+);\s*$")]
    private static partial Regex DepotStore();

    [GeneratedRegex(@"%rd\d+(?!\d)")]
    private static partial Regex AddressRegister();

    [GeneratedRegex(@"^0[fF]([0-9a-fA-F]{8})$")]
    private static partial Regex FloatBits();

    /// <summary>
    /// ILGPU passes every inline-asm operand through a 4-byte local variable of its own (<c>__local_depotN</c>, stored
    /// and loaded through one address register); ptxas usually turns those back into registers, but not in a kernel
    /// that also issues an asynchronous copy (<c>cp.async</c>, <c>cp.async.bulk</c>): there they stay in memory (the
    /// attention with cp.async: 4 KB of stack and 213 registers; without the copies, 142 registers and none). This
    /// edit does what ptxas would: each such variable whose address is used only by 32-bit <c>ld.local</c> /
    /// <c>st.local</c> becomes a register <c>%dpN</c> (the loads and stores <c>mov.b32</c>s); any other is left alone.
    /// Modules with more than one function are returned unchanged.
    /// </summary>
    public static string PromoteLocalScalars(string ptx)
    {
        if (ptx.Contains(".func", StringComparison.Ordinal)) return ptx;
        var lines = ptx.Split('\n');
        var depotOf = new Dictionary<string, int>(); // address register -> depot
        var declared = new HashSet<int>();
        // Depots whose address is used anywhere but a 32-bit load or store, taken into more than one register, or
        // sharing a register with another, stay as they are.
        var kept = new HashSet<int>();
        foreach (var line in lines)
        {
            if (ScalarDepot().Match(line) is { Success: true } d) declared.Add(int.Parse(d.Groups[1].Value));
            else if (DepotAddress().Match(line) is { Success: true } m)
            {
                int depot = int.Parse(m.Groups[2].Value);
                if (depotOf.TryGetValue(m.Groups[1].Value, out int other) && other != depot) kept.UnionWith([depot, other]);
                else depotOf[m.Groups[1].Value] = depot;
            }
        }
        kept.UnionWith(depotOf.Values.Where(d => !declared.Contains(d)));
        foreach (var group in depotOf.GroupBy(p => p.Value).Where(g => g.Count() > 1)) kept.Add(group.Key);
        foreach (var line in lines)
        {
            if (!line.Contains("%rd", StringComparison.Ordinal) || DepotAddress().IsMatch(line)) continue;
            bool access = DepotLoad().IsMatch(line) || DepotStore().IsMatch(line);
            foreach (Match r in AddressRegister().Matches(line))
                if (depotOf.TryGetValue(r.Value, out int depot) && (!access || !line.Contains($"[{r.Value}]", StringComparison.Ordinal)))
                    kept.Add(depot);
        }
        int Promoted(string register) => depotOf.TryGetValue(register, out int d) && !kept.Contains(d) ? d : -1;

        var result = new List<string>(lines.Length);
        bool declaredRegisters = false;
        int highest = declared.Where(d => !kept.Contains(d)).DefaultIfEmpty(-1).Max();
        if (highest < 0) return ptx;
        foreach (var line in lines)
        {
            string? replaced = line;
            if (ScalarDepot().Match(line) is { Success: true } d && !kept.Contains(int.Parse(d.Groups[1].Value)))
            {
                // The registers where the first depot was declared (the function's top); the depot itself goes.
                replaced = declaredRegisters ? null : $"\t.reg .b32 \t%dp<{highest + 1}>;";
                declaredRegisters = true;
            }
            else if (DepotAddress().Match(line) is { Success: true } a && Promoted(a.Groups[1].Value) >= 0) replaced = null;
            else if (DepotLoad().Match(line) is { Success: true } l && Promoted(l.Groups[2].Value) is >= 0 and var from)
                replaced = $"\tmov.b32 \t{l.Groups[1].Value}, %dp{from};";
            else if (DepotStore().Match(line) is { Success: true } st && Promoted(st.Groups[1].Value) is >= 0 and var to)
            {
                string value = st.Groups[2].Value;
                // A float immediate (0f3F800000) as the bits a .b32 move takes.
                if (FloatBits().Match(value) is { Success: true } bits) value = "0x" + bits.Groups[1].Value;
                replaced = $"\tmov.b32 \t%dp{to}, {value};";
            }
            if (replaced is not null) result.Add(replaced);
        }
        return string.Join('\n', result);
    }
}

/// <summary>Marks a CUDA kernel whose PTX is loaded through <see cref="PtxTarget.PromoteLocalScalars"/>: one that issues
/// asynchronous copies and passes many values through inline asm.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class PromoteLocalScalarsAttribute : Attribute;

/// <summary>Asks ptxas to fit <see cref="Blocks"/> blocks of <see cref="Threads"/> threads on a multiprocessor
/// (<c>.maxntid</c>, <c>.minnctapersm</c>: it caps the registers a thread takes); launches must not exceed the threads.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class BlocksPerMultiprocessorAttribute(int threads, int blocks) : Attribute
{
    public int Threads { get; } = threads;
    public int Blocks { get; } = blocks;
}
