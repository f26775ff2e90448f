using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>
/// The CUDA kernels cannot run here, but ILGPU can translate them to PTX without a device: these
/// tests catch kernels ILGPU rejects, and check the generated code has the intended shape
/// (tensor-core instructions, 16-byte loads, no local-memory arrays).
/// </summary>
public class PtxGenerationTests
{
    private static string CompileToPtx(MethodInfo kernel)
    {
        using var context = Context.Create(b => b.Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2));
        using var backend = new PTXBackend(context, CudaArchitecture.SM_80, CudaInstructionSet.ISA_80, null!);
        var entry = EntryPointDescription.FromExplicitlyGroupedKernel(kernel);
        var compiled = (PTXCompiledKernel)backend.Compile(entry, new KernelSpecialization(null, null));
        return compiled.PTXAssembly;
    }

    private static MethodInfo Kernel(Type type, Type epilogue) =>
        type.GetMethod("Kernel", BindingFlags.Public | BindingFlags.Static)!.MakeGenericMethod(epilogue);

    private static int Count(string text, string what) => (text.Length - text.Replace(what, "").Length) / what.Length;

    [Theory]
    [InlineData(typeof(IdentityEpilogue))]
    [InlineData(typeof(GeluTanhEpilogue))]
    public void TensorCoreKernelTranslatesToMmaWithVectorLoads(Type epilogue)
    {
        var ptx = CompileToPtx(Kernel(typeof(LinearTensorCore), epilogue));
        // 2 steps of 16 mma per K tile: the loop body holds 32 mma instructions.
        Assert.Equal(32, Count(ptx, "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"));
        Assert.Contains(".reg .f32 acc<64>;", ptx);
        Assert.Contains("ld.global.v4", ptx);
        Assert.Contains("st.shared.v4", ptx);
        // x arrives as fp16, staged like W: no conversion anywhere (an fp16 y is rounded with integer ops).
        Assert.Equal(0, Count(ptx, "cvt.rn.f16.f32"));
        // Per K tile each thread moves two 16-byte groups of x and two of W: 4 vector loads in the
        // prologue and 4 in the loop.
        Assert.Equal(8, Count(ptx, "ld.global.v4"));
        // Only the 4 accumulator read-outs after the loop go through local memory (Emit's out parameters).
        Assert.Equal(4, Count(ptx, ".local .align"));
    }

    [Fact]
    public void SgemmTranslatesWithVectorSharedLoadsAndNoLocalMemory()
    {
        var ptx = CompileToPtx(Kernel(typeof(Sgemm), typeof(IdentityEpilogue)));
        Assert.Contains("ld.shared.v4.f32", ptx);
        Assert.Contains("bar.sync", ptx);
        Assert.DoesNotContain(".local", ptx);
    }

    [Fact]
    public void WarpLayerNormTranslatesToButterflyShuffles()
    {
        var ptx = CompileToPtx(typeof(LayerNormModulateWarp).GetMethod("Kernel")!);
        Assert.Equal(10, Count(ptx, "shfl.sync.bfly"));
        Assert.DoesNotContain("bar.sync", ptx);
    }

    [Fact]
    public void SkinnyGemmTranslatesToVectorLoadsAndShufflesWithoutLocalMemory()
    {
        var ptx = CompileToPtx(Kernel(typeof(LinearSkinny), typeof(IdentityEpilogue)));
        Assert.Equal(8 + 4 + 2 + 1 + 1, Count(ptx, "shfl.sync.bfly")); // 16 row sums, halving at each step
        Assert.Contains("ld.global.v4", ptx);
        Assert.DoesNotContain(".local", ptx);
    }
}
