using System.CommandLine;
using SmoothCache.Kernels;

namespace SmoothCache.Cli.Bench;

/// <summary>`smoothcache bench-gemm`: the CUDA kernel checks, then the GEMM benchmarks; exit 1 if a check fails.</summary>
public static class BenchGemmCommand
{
    public static Command Create(CliContext context)
    {
        var json = new Option<string>("--json") { Description = "where to write the results as JSON", DefaultValueFactory = _ => "gemm-bench.json" };
        var iterations = new Option<int>("--iterations") { Description = "timed calls per kernel and shape", DefaultValueFactory = _ => 20 };
        var command = new Command("bench-gemm", "Check the CUDA GEMM kernels against float64 and time them against cuBLAS.");
        command.Add(json);
        command.Add(iterations);
        command.SetAction(parse =>
        {
            using var backend = Backend.Create(DeviceKind.Cuda);
            // Timings first: the whole-model checks at the end of GpuChecks can leave the context faulted.
            var results = GemmBench.Run(backend, context.Out, parse.GetValue(iterations));
            var checks = GpuChecks.Run(backend, context.Out);
            GemmBench.WriteJson(parse.GetValue(json)!, backend.DeviceName, results, checks);
            return checks.All(c => c.Passed) ? ExitCodes.Success : ExitCodes.Internal;
        });
        return command;
    }
}
