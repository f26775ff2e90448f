using System.Text.Json;
using SmoothCache.Caching;
using SmoothCache.Kernels;
using SmoothCache.Model;

namespace SmoothCache.Tests.Caching;

/// <summary>One CPU backend for all caching tests (a backend is used from one thread at a time).</summary>
public sealed class CpuBackendFixture : IDisposable
{
    public Backend Backend { get; } = Backend.Create(DeviceKind.Cpu);
    public void Dispose() => Backend.Dispose();
}

[CollectionDefinition(Name)]
public sealed class CpuBackendCollection : ICollectionFixture<CpuBackendFixture>
{
    public const string Name = "Caching CPU backend";
}

internal static class CachingFiles
{
    public static string Tiny(string file) => Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny", file);

    /// <summary>The repository's schedules/dit-xl-2-256 folder (found above the test output folder).</summary>
    public static string DitXlSchedules
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "SmoothCache.ILGPU.sln")))
                    return Path.Combine(dir.FullName, "schedules", "dit-xl-2-256");
            throw new DirectoryNotFoundException($"no SmoothCache.ILGPU.sln above {AppContext.BaseDirectory}");
        }
    }

    public static JsonElement ReadJson(string path) => JsonDocument.Parse(File.ReadAllText(path)).RootElement;

    public static double[][] Rows(JsonElement rows) =>
        rows.EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetDouble()).ToArray()).ToArray();

    public static bool[] Flags(JsonElement list) => list.EnumerateArray().Select(e => e.GetInt32() switch
    {
        0 => false,
        1 => true,
        var v => throw new InvalidDataException($"flag {v}"),
    }).ToArray();

    /// <summary>"transformer_blocks.3.attn1" -> (attn1, 3).</summary>
    public static ComponentBlock ParseModule(string name)
    {
        var parts = name.Split('.');
        Assert.Equal(3, parts.Length);
        Assert.Equal("transformer_blocks", parts[0]);
        return new ComponentBlock(parts[2], int.Parse(parts[1]));
    }
}

/// <summary>
/// Stands in for a DiT: each forward runs every block's components through the hook, with compute
/// functions supplied by the test; records how often each (component, block) really computed.
/// </summary>
internal sealed class FakeModel(int numBlocks) : IHookable
{
    public IComponentHook? Hook { get; set; }
    public int NumBlocks { get; } = numBlocks;
    public Dictionary<ComponentBlock, int> ComputeCalls { get; } = new();

    /// <summary>Runs one component call as a DiT block would and returns the host copy of what came back.</summary>
    public float[] Call(string component, int block, Func<Tensor> compute)
    {
        Tensor Counted()
        {
            var key = new ComponentBlock(component, block);
            ComputeCalls[key] = ComputeCalls.GetValueOrDefault(key) + 1;
            return compute();
        }
        // The block owns what comes back and disposes it after the residual add.
        using var output = Hook is null ? Counted() : Hook.Run(component, block, Counted);
        return output.ToArray();
    }
}

/// <summary>A hook that only computes: stands for whatever hook the model had before a helper.</summary>
internal sealed class PassThroughHook : IComponentHook
{
    public Tensor Run(string component, int block, Func<Tensor> compute) => compute();
}
