namespace SmoothCache.Model.Checkpoints;

/// <summary>Name, storage dtype (as safetensors spells it: F32, F16, BF16, F64) and shape of one stored tensor.</summary>
public sealed record TensorEntry(string Name, string DType, int[] Shape)
{
    /// <summary>The product of the shape (the readers refuse shapes whose product overflows).</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => checked(a * b));
}

/// <summary>
/// Named tensors from a checkpoint (one safetensors file, a sharded set, or a PyTorch .bin).
/// Values are converted to float32 on read; every failure names the file and the tensor.
/// </summary>
public interface IWeightSource : IDisposable
{
    /// <summary>The file or folder the tensors come from, for messages.</summary>
    string Location { get; }

    /// <summary>Every stored tensor's name.</summary>
    IReadOnlyCollection<string> Names { get; }

    /// <summary>Whether a tensor of this name is stored.</summary>
    bool Contains(string name);

    /// <summary>Throws <see cref="MissingTensorException"/> when absent.</summary>
    TensorEntry Describe(string name);

    /// <summary>
    /// Reads a tensor as float32. Throws <see cref="MissingTensorException"/> when absent and
    /// <see cref="TensorShapeException"/> when <paramref name="expectedShape"/> is given and differs.
    /// </summary>
    float[] ReadFloat32(string name, params int[] expectedShape);
}
