using ILGPU;
using ILGPU.Runtime;
using SmoothCache.Kernels;

namespace SmoothCache.Cli.Bench;

/// <summary>
/// Runs every DiT operator once on tiny tensors, waiting and reading back after each, and prints
/// which one fails: the first thing to run on a new device.
/// </summary>
public static class SmokeCheck
{
    public static bool Run(Backend backend, TextWriter log)
    {
        var arena = backend.Arena;
        using var labelsBuffer = backend.Accelerator.Allocate1D<int>(2);
        labelsBuffer.View.CopyFromCPU(new[] { 1, 0 });
        var steps = new (string Name, Func<Tensor> Op)[]
        {
            ("Unpatchify first", () => { using var y = arena.Zeros(2, 16, 8); return Unpatchify.Run(y, 2, 2); }),
            ("Guidance", () => { using var m = arena.Zeros(4, 2, 4, 4); return Guidance.Run(m, 1, 4f); }),
            ("RepeatBatch", () => { using var x = arena.Zeros(2, 1, 4, 4); return RepeatBatch.Run(x, 2); }),
            ("PositionTable", () => PositionTable.Run(backend, 4, 8)),
            ("TimestepEmbedding", () => { using var t = arena.Upload([999f, 1f], 2); return TimestepEmbedding.Run(t); }),
            ("ClassEmbedding", () => { using var table = arena.Zeros(3, 8); using var add = arena.Zeros(2, 8); return ClassEmbedding.Run(labelsBuffer.View, table, add); }),
            ("PatchEmbed", () => { using var x = arena.Zeros(2, 1, 8, 8); using var w = arena.Zeros(8, 1, 2, 2); using var b = arena.Zeros(8); using var p = arena.Zeros(16, 8); return PatchEmbed.Run(x, w, b, p); }),
            ("Elementwise", () => { using var x = arena.Zeros(2, 8); return Elementwise.Run<SiluEpilogue>(x); }),
            ("Linear", () => { using var x = arena.Zeros(2, 16, 8); using var w = arena.Zeros(24, 8); using var b = arena.Zeros(24); return Linear.Run(x, w, b); }),
            ("LayerNormModulate", () => { using var x = arena.Zeros(2, 16, 8); using var m = arena.Zeros(2, 48); return LayerNormModulate.Run(x, m, 0, 8, 1e-6f); }),
            ("Unpatchify before attention", () => { using var y = arena.Zeros(2, 16, 8); return Unpatchify.Run(y, 2, 2); }),
            ("Attention", () => { using var q = arena.Zeros(2, 16, 24); return Attention.Run(q, 2, 4); }),
            ("Unpatchify", () => { using var y = arena.Zeros(2, 16, 8); return Unpatchify.Run(y, 2, 2); }),
            ("Guidance again", () => { using var m = arena.Zeros(4, 2, 4, 4); return Guidance.Run(m, 1, 4f); }),
        };
        foreach (var (name, op) in steps)
        {
            try
            {
                using var result = op();
                result.ToArray();
                log.WriteLine($"ok   {name}");
            }
            catch (Exception e)
            {
                log.WriteLine($"FAIL {name}: {e.GetType().Name}: {e.Message}");
                return false;
            }
        }
        return true;
    }
}
