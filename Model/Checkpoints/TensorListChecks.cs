namespace SmoothCache.Model.Checkpoints;

/// <summary>Argument checks shared by the checkpoint writers.</summary>
internal static class TensorListChecks
{
    public static void Validate(string path, IReadOnlyList<(string name, int[] shape, float[] data)> tensors)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, shape, data) in tensors)
        {
            if (string.IsNullOrEmpty(name) || name == "__metadata__")
                throw new ArgumentException($"{path}: tensor name '{name}' is not allowed", nameof(tensors));
            if (!seen.Add(name))
                throw new ArgumentException($"{path}: tensor '{name}' given twice", nameof(tensors));
            if (shape.Any(size => size < 0))
                throw new ArgumentException($"{path}: tensor '{name}' has a negative size in shape [{string.Join(",", shape)}]", nameof(tensors));
            long count = shape.Aggregate(1L, (a, b) => a * b);
            if (count != data.Length)
                throw new ArgumentException(
                    $"{path}: tensor '{name}' has {data.Length} values, shape [{string.Join(",", shape)}] needs {count}", nameof(tensors));
        }
    }
}
