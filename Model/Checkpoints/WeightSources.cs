namespace SmoothCache.Model.Checkpoints;

/// <summary>Opens a checkpoint by its file name, or finds the weights inside a diffusers component folder.</summary>
public static class WeightSources
{
    private const string IndexSuffix = ".safetensors.index.json", Fp16IndexSuffix = ".safetensors.index.fp16.json";

    /// <summary>
    /// Opens <c>.safetensors</c>, <c>.safetensors.index.json</c> or <c>.safetensors.index.fp16.json</c> (sharded) or <c>.bin</c>/<c>.pt</c>/<c>.pth</c>
    /// (torch.save zip); a folder is searched as by <see cref="OpenModelFolder"/>.
    /// </summary>
    /// <exception cref="UnsupportedCheckpointFormatException">The extension is none of these.</exception>
    public static IWeightSource Open(string path)
    {
        if (Directory.Exists(path))
            return OpenModelFolder(path);
        if (path.EndsWith(IndexSuffix, StringComparison.OrdinalIgnoreCase) || path.EndsWith(Fp16IndexSuffix, StringComparison.OrdinalIgnoreCase))
            return ShardedSafetensors.Open(path);
        return Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".safetensors" => SafetensorsFile.Open(path),
            ".bin" or ".pt" or ".pth" => PyTorchBinFile.Open(path),
            _ => throw new UnsupportedCheckpointFormatException(path,
                $"unknown checkpoint format (expected .safetensors, {IndexSuffix}, {Fp16IndexSuffix}, .bin, .pt or .pth)"),
        };
    }

    /// <summary>
    /// Opens the weights of a diffusers component folder (e.g. <c>transformer/</c>): the first of
    /// <c>{base}.safetensors</c>, <c>{base}.safetensors.index.json</c>, <c>{base}.bin</c> that exists, else the same
    /// files of diffusers' fp16 variant (<c>{base}.fp16.safetensors</c>, <c>{base}.safetensors.index.fp16.json</c>,
    /// <c>{base}.fp16.bin</c>: what <c>save_pretrained(variant="fp16")</c> writes, and all a folder downloaded with
    /// <c>variant="fp16"</c> holds). Float16 weights load into either precision.
    /// </summary>
    /// <exception cref="CheckpointNotFoundException">The folder, or every candidate in it, is missing.</exception>
    public static IWeightSource OpenModelFolder(string folder, string weightsBaseName = "diffusion_pytorch_model")
    {
        if (!Directory.Exists(folder))
            throw new CheckpointNotFoundException(folder, "model folder not found");
        string[] candidates =
        [
            $"{weightsBaseName}.safetensors", weightsBaseName + IndexSuffix, $"{weightsBaseName}.bin",
            $"{weightsBaseName}.fp16.safetensors", weightsBaseName + Fp16IndexSuffix, $"{weightsBaseName}.fp16.bin",
        ];
        foreach (string candidate in candidates)
        {
            string path = Path.Combine(folder, candidate);
            if (File.Exists(path))
                return Open(path);
        }
        string binIndex = $"{weightsBaseName}.bin.index.json";
        if (File.Exists(Path.Combine(folder, binIndex)))
            throw new UnsupportedCheckpointFormatException(Path.Combine(folder, binIndex),
                "sharded .bin checkpoints are not supported; save the model as safetensors (save_pretrained's default)");
        throw new CheckpointNotFoundException(folder, $"no weights found (looked for {string.Join(", ", candidates)})");
    }

    /// <summary>What a file that is not a checkpoint of its extension's format holds, where its first bytes say: a git-lfs
    /// pointer (a repository cloned without its large files) or a pickle (torch.save before PyTorch 1.6); else null.</summary>
    internal static string? ForeignContent(string path)
    {
        Span<byte> head = stackalloc byte[24];
        int read;
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
            read = file.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        head = head[..read];
        if (head.StartsWith("version https://git-lfs"u8))
            return "this is a git-lfs pointer, not the weights: fetch them (git lfs pull) or download the file itself";
        if (head.Length >= 2 && head[0] == 0x80 && head[1] <= 5)
            return "this is a pickle, the torch.save format before PyTorch 1.6, which is not supported: re-save it with a newer torch.save, or as safetensors";
        return null;
    }
}
