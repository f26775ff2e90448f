using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SmoothCache.Kernels;

namespace SmoothCache.Cli.Bench;

/// <summary>ILGPU's PTX backend without a device: kernel methods to PTX text as ILGPU writes it on the lent GPUs
/// (<c>.target sm_80</c>; <see cref="PtxTarget"/> edits it as <see cref="Backend"/> does before loading).</summary>
public sealed class PtxCompiler : IDisposable
{
    private readonly Context _context = Context.Create(b => b.Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2).Math(Backend.KernelMath));
    private readonly PTXBackend _backend;

    public PtxCompiler() => _backend = new PTXBackend(_context, CudaArchitecture.SM_80, CudaInstructionSet.ISA_80, null!);

    /// <summary>The PTX of a kernel (auto-grouped when it takes its index first, explicitly grouped otherwise) as a backend
    /// loads it before retargeting (<see cref="PtxTarget.ApplyEdits"/>).</summary>
    public string Compile(MethodInfo kernel) => PtxTarget.ApplyEdits(kernel, CompileKernel(kernel).PTXAssembly);

    public PTXCompiledKernel CompileKernel(MethodInfo kernel)
    {
        var entry = kernel.GetParameters()[0].ParameterType == typeof(Index1D)
            ? EntryPointDescription.FromImplicitlyGroupedKernel(kernel)
            : EntryPointDescription.FromExplicitlyGroupedKernel(kernel);
        return (PTXCompiledKernel)_backend.Compile(entry, new KernelSpecialization(null, null));
    }

    public void Dispose()
    {
        _backend.Dispose();
        _context.Dispose();
    }
}
