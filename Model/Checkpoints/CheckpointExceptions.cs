namespace SmoothCache.Model.Checkpoints;

/// <summary>A checkpoint or model folder that cannot be used; the message names the file (and tensor).</summary>
public class CheckpointException : Exception
{
    /// <summary>The file (or folder) at fault.</summary>
    public string File { get; }
    /// <summary>The tensor at fault, where one is.</summary>
    public string? TensorName { get; }

    public CheckpointException(string file, string? tensor, string problem, Exception? inner = null)
        : base(Format(file, tensor, problem), inner)
    {
        File = file;
        TensorName = tensor;
    }

    private static string Format(string file, string? tensor, string problem) =>
        tensor is null ? $"{file}: {problem}" : $"{file}: tensor '{tensor}': {problem}";
}

/// <summary>The file is not there.</summary>
public sealed class CheckpointNotFoundException(string file, string problem)
    : CheckpointException(file, null, problem);

/// <summary>The file is truncated, its header is not valid, or offsets fall outside it or overlap.</summary>
public sealed class CorruptCheckpointException(string file, string? tensor, string problem, Exception? inner = null)
    : CheckpointException(file, tensor, problem, inner);

/// <summary>A tensor the model needs is not in the checkpoint.</summary>
public sealed class MissingTensorException(string file, string tensor)
    : CheckpointException(file, tensor, "missing from the checkpoint");

/// <summary>A tensor has another shape than the model's config implies.</summary>
public sealed class TensorShapeException(string file, string tensor, int[] expected, int[] actual)
    : CheckpointException(file, tensor,
        $"expected shape [{string.Join(",", expected)}], found [{string.Join(",", actual)}]");

/// <summary>A tensor is stored in a dtype this reader does not convert.</summary>
public sealed class UnsupportedDTypeException(string file, string tensor, string dtype)
    : CheckpointException(file, tensor, $"unsupported dtype {dtype} (expected F32, F16, BF16 or F64)");

/// <summary>A config.json key has a value the model cannot use.</summary>
public sealed class ModelConfigException(string file, string key, string problem)
    : CheckpointException(file, null, $"key '{key}': {problem}");

/// <summary>The file's name does not say which checkpoint format it is in.</summary>
public sealed class UnsupportedCheckpointFormatException(string file, string problem)
    : CheckpointException(file, null, problem);
