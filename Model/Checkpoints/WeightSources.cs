namespace SmoothCache.Model.Checkpoints;

/// <summary>Opens a checkpoint by its file name, or finds the weights inside a diffusers component folder.</summary>
public static class WeightSources
{
    private const string IndexSuffix = ".safetensors.index.json";

    /// <summary>
    /// Opens <c>.safetensors</c>, <c>.safetensors.index.json</c> (sharded) or <c>.bin</c>/<c>.pt</c>/<c>.pth</c>
    /// (torch.save zip); a folder is searched as by <see cref="OpenModelFolder"/>.
    /// </summary>
    /// <exception cref="UnsupportedCheckpointFormatException">The extension is none of these.</exception>
    public static IWeightSource Open(string path)
    {
        if (Directory.Exists(path))
            return OpenModelFolder(path);
        if (path.EndsWith(IndexSuffix, StringComparison.OrdinalIgnoreCase))
            return ShardedSafetensors.Open(path);
        return Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".safetensors" => SafetensorsFile.Open(path),
            ".bin" or ".pt" or ".pth" => PyTorchBinFile.Open(path),
            _ => throw new UnsupportedCheckpointFormatException(path,
                $"unknown checkpoint format (expected .safetensors, {IndexSuffix}, .bin, .pt or .pth)"),
        };
    }

    /// <summary>
    /// Opens the weights of a diffusers component folder (e.g. <c>transformer/</c>): the first of
    /// <c>{base}.safetensors</c>, <c>{base}.safetensors.index.json</c>, <c>{base}.bin</c> that exists.
    /// </summary>
    /// <exception cref="CheckpointNotFoundException">The folder, or every candidate in it, is missing.</exception>
    public static IWeightSource OpenModelFolder(string folder, string weightsBaseName = "diffusion_pytorch_model")
    {
        if (!Directory.Exists(folder))
            throw new CheckpointNotFoundException(folder, "model folder not found");
        string[] candidates = [$"{weightsBaseName}.safetensors", weightsBaseName + IndexSuffix, $"{weightsBaseName}.bin"];
        foreach (string candidate in candidates)
        {
            string path = Path.Combine(folder, candidate);
            if (File.Exists(path))
                return Open(path);
        }
        throw new CheckpointNotFoundException(folder, $"no weights found (looked for {string.Join(", ", candidates)})");
    }
}
