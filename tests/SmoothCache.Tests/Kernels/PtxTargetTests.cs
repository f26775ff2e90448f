using SmoothCache.Cli.Bench;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Tests.Kernels;

public class PtxTargetTests
{
    [Fact]
    public void ReplacesOnlyTheTargetLine()
    {
        const string ptx = "//\n.version 8.0\n.target sm_80\n.address_size 64\n// .target sm_80 in a comment stays\n";
        string retargeted = PtxTarget.Retarget(ptx, PtxTarget.Hopper);
        Assert.Equal(ptx.Replace(".target sm_80\n", ".target sm_90a\n"), retargeted);
        Assert.Throws<ArgumentException>(() => PtxTarget.Retarget(".version 8.0\n", PtxTarget.Hopper));
    }

    [Fact]
    public void AlignsDynamicSharedMemoryFor1024ByteSwizzleAtoms()
    {
        const string ptx = ".target sm_80\n.extern .shared .align 16 .b8 __dyn_shared_alloca[];\n";
        Assert.Contains(".extern .shared .align 1024 .b8 __dyn_shared_alloca[];", PtxTarget.Retarget(ptx, PtxTarget.Hopper));
    }

    [Fact]
    public void AsksForClustersRightAfterTheEntryDeclaration()
    {
        const string ptx = ".target sm_80\n.visible .entry Kernel_Kernel(\n\t.param .align 8 .b8 _a[16]\n)\n{\n\tret;\n}\n";
        string clustered = PtxTarget.Retarget(ptx, PtxTarget.Hopper, clusterRows: 2);
        Assert.Contains(".param .align 8 .b8 _a[16]\n)\n.reqnctapercluster 1, 2, 1\n{", clustered);
        Assert.DoesNotContain(".reqnctapercluster", PtxTarget.Retarget(ptx, PtxTarget.Hopper));
        Assert.Throws<ArgumentException>(() => PtxTarget.Retarget(".target sm_80\n", PtxTarget.Hopper, clusterRows: 2));
    }

    [Fact]
    public void PromotesLocalScalarsUsedOnlyByWordLoadsAndStores()
    {
        const string ptx = ".target sm_80\n.visible .entry Kernel_Kernel(\n)\n{\n" +
            "\t.local .align 4 .b8 __local_depot0[4];\n\t.local .align 4 .b8 __local_depot1[4];\n\t.local .align 4 .b8 __local_depot2[4];\n" +
            "\tmov.b64 \t%rd1, __local_depot0;\n\tmov.b64 \t%rd2, __local_depot1;\n\tmov.b64 \t%rd3, __local_depot2;\n" +
            "\tst.local.f32 \t[%rd1], 0f3F800000;\n\tld.local.b32 \t%r1, [%rd1];\n\tst.local.b32 \t[%rd1], %r1;\n\tld.local.f32 \t%f1, [%rd1];\n" +
            // depot 1 at an offset, depot 2's address in arithmetic: both stay in memory.
            "\tst.local.b32 \t[%rd2+4], %r1;\n\tadd.s64 \t%rd4, %rd3, 8;\n\tst.local.b32 \t[%rd3], %r1;\n\tld.local.b32 \t%r12, [%rd13];\n\tret;\n}\n";
        string promoted = PtxTarget.PromoteLocalScalars(ptx);
        Assert.Equal(".target sm_80\n.visible .entry Kernel_Kernel(\n)\n{\n" +
            "\t.reg .b32 \t%dp<1>;\n\t.local .align 4 .b8 __local_depot1[4];\n\t.local .align 4 .b8 __local_depot2[4];\n" +
            "\tmov.b64 \t%rd2, __local_depot1;\n\tmov.b64 \t%rd3, __local_depot2;\n" +
            "\tmov.b32 \t%dp0, 0x3F800000;\n\tmov.b32 \t%r1, %dp0;\n\tmov.b32 \t%dp0, %r1;\n\tmov.b32 \t%f1, %dp0;\n" +
            "\tst.local.b32 \t[%rd2+4], %r1;\n\tadd.s64 \t%rd4, %rd3, 8;\n\tst.local.b32 \t[%rd3], %r1;\n\tld.local.b32 \t%r12, [%rd13];\n\tret;\n}\n",
            promoted);
        // An address register that names two depots leaves both in memory.
        const string shared = ".target sm_80\n.visible .entry Kernel_Kernel(\n)\n{\n" +
            "\t.local .align 4 .b8 __local_depot0[4];\n\t.local .align 4 .b8 __local_depot1[4];\n" +
            "\tmov.b64 \t%rd1, __local_depot0;\n\tst.local.b32 \t[%rd1], 1;\n\tmov.b64 \t%rd1, __local_depot1;\n\tld.local.b32 \t%r1, [%rd1];\n}\n";
        Assert.Equal(shared, PtxTarget.PromoteLocalScalars(shared));
        // A module with a function besides the entry is left alone (its registers would need declaring in each).
        Assert.Equal(ptx + ".func f()\n{\n}\n", PtxTarget.PromoteLocalScalars(ptx + ".func f()\n{\n}\n"));
    }

    [Fact]
    public void RetargetsTheWgmmaKernelIlgpuCompiled()
    {
        // ILGPU's PTX backend needs no device; the compiled kernel's text is what the driver would assemble.
        var kernel = typeof(LinearWgmma).GetMethod(nameof(LinearWgmma.Kernel))!.MakeGenericMethod(typeof(IdentityEpilogue), typeof(LinearWgmma.Ptx), typeof(LinearWgmma.OneWarpGroup));
        using var compiler = new PtxCompiler();
        var compiled = compiler.CompileKernel(kernel);
        Assert.Contains(".target sm_80", compiled.PTXAssembly);
        PtxTarget.Retarget(compiled, PtxTarget.Hopper);
        Assert.Contains(".target sm_90a", compiled.PTXAssembly);
        Assert.Contains("wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16", compiled.PTXAssembly);
    }

    [Fact]
    public void WaitsForPrerequisiteGridsBeforeAnythingElseInTheEntry()
    {
        const string ptx = ".target sm_80\n.func Helper()\n{\n\tret;\n}\n.visible .entry Kernel_Kernel(\n\t.param .b32 _n\n)\n{\n\t.reg .b32 %r<2>;\n\tld.param.b32 %r1, [_n];\n\tret;\n}\n";
        string waiting = PtxTarget.Retarget(ptx, PtxTarget.DependentLaunch, clusterRows: 2, waitForPrerequisiteGrids: true);
        Assert.Contains(".target sm_90\n", waiting);
        // After the cluster directive, in the entry's body (not the helper's), first.
        Assert.Contains(".reqnctapercluster 1, 2, 1\n{\n\tgriddepcontrol.wait;\n\t.reg .b32", waiting);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(waiting, "griddepcontrol.wait"));
        Assert.DoesNotContain("griddepcontrol", PtxTarget.Retarget(ptx, PtxTarget.DependentLaunch));
        // griddepcontrol exists from sm_90 on.
        Assert.Throws<ArgumentException>(() => PtxTarget.Retarget(ptx, "sm_80", waitForPrerequisiteGrids: true));
        Assert.Contains("griddepcontrol.wait", PtxTarget.Retarget(ptx, PtxTarget.Hopper, waitForPrerequisiteGrids: true));
        Assert.Throws<ArgumentException>(() => PtxTarget.Retarget(".target sm_80\n", PtxTarget.DependentLaunch, waitForPrerequisiteGrids: true));
    }

    [Fact]
    public void AKernelIlgpuCompiledWaitsBeforeReadingItsParameters()
    {
        var kernel = typeof(ElementLauncher).GetMethod(nameof(ElementLauncher.Kernel))!.MakeGenericMethod(typeof(Unpatchify.Args));
        using var compiler = new PtxCompiler();
        var compiled = compiler.CompileKernel(kernel);
        PtxTarget.Retarget(compiled, PtxTarget.DependentLaunch, waitForPrerequisiteGrids: true);
        string ptx = compiled.PTXAssembly;
        int wait = ptx.IndexOf("griddepcontrol.wait;", StringComparison.Ordinal);
        Assert.True(wait > ptx.IndexOf(".entry", StringComparison.Ordinal));
        Assert.True(wait < ptx.IndexOf("ld.param", StringComparison.Ordinal));
        Assert.True(wait < ptx.IndexOf("ld.global", StringComparison.Ordinal) || !ptx.Contains("ld.global"));
        // The grids after it launch as its blocks exit: none is let in early to take the multiprocessors its blocks need.
        Assert.DoesNotContain("griddepcontrol.launch_dependents", ptx);
    }
}
