using ILGPU.Backends.PTX;
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
}
