using System.Text.Json;
using SmoothCache.Kernels;

namespace SmoothCache.Model.Checkpoints;

/// <summary>
/// A checkpoint split over several safetensors files, described by a <c>*.safetensors.index.json</c>
/// whose <c>weight_map</c> maps each tensor name to its shard's file name (in the index's folder).
/// Every shard is opened and validated up front; reads go to the owning shard, so errors about a
/// tensor's bytes name the shard file.
/// </summary>
public sealed class ShardedSafetensors : IWeightSource
{
    private readonly Dictionary<string, SafetensorsFile> _owner;
    private readonly List<SafetensorsFile> _shards;

    /// <inheritdoc/>
    public string Location { get; }

    /// <summary>Tensor names in <c>weight_map</c> order.</summary>
    public IReadOnlyCollection<string> Names { get; }

    private ShardedSafetensors(string location, Dictionary<string, SafetensorsFile> owner, List<SafetensorsFile> shards, List<string> names)
    {
        Location = location;
        _owner = owner;
        _shards = shards;
        Names = names;
    }

    /// <summary>Opens the index and every shard it names.</summary>
    /// <exception cref="CheckpointNotFoundException">The index, or a shard it names, does not exist.</exception>
    /// <exception cref="CorruptCheckpointException">The index is not valid, or a shard lacks a tensor mapped to it.</exception>
    public static ShardedSafetensors Open(string indexPath)
    {
        if (PathProblems.ForFile(indexPath) is { } problem)
            throw new CheckpointNotFoundException(indexPath, problem);
        var weightMap = ReadWeightMap(indexPath);
        string folder = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;

        var shardsByFile = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var owner = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var (tensor, shardName) in weightMap)
            {
                if (!shardsByFile.TryGetValue(shardName, out SafetensorsFile? shard))
                {
                    string shardPath = Path.Combine(folder, shardName);
                    if (!File.Exists(shardPath))
                        throw new CheckpointNotFoundException(indexPath, Directory.Exists(shardPath)
                            ? $"shard '{shardName}' named by weight_map is a folder ({shardPath}): expected a safetensors file"
                            : $"shard '{shardName}' named by weight_map is missing (looked for {shardPath})");
                    shard = SafetensorsFile.Open(shardPath);
                    shardsByFile.Add(shardName, shard);
                }
                if (!shard.Contains(tensor))
                    throw new CorruptCheckpointException(indexPath, tensor, $"weight_map places it in shard '{shardName}', which does not contain it");
                owner.Add(tensor, shard);
            }
        }
        catch
        {
            foreach (SafetensorsFile shard in shardsByFile.Values) shard.Dispose();
            throw;
        }
        return new ShardedSafetensors(indexPath, owner, shardsByFile.Values.ToList(), weightMap.Select(e => e.Tensor).ToList());
    }

    private static List<(string Tensor, string Shard)> ReadWeightMap(string indexPath)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(indexPath));
        }
        catch (JsonException e)
        {
            throw new CorruptCheckpointException(indexPath, null, JsonErrors.Describe(e), e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out JsonElement map) || map.ValueKind != JsonValueKind.Object)
                throw new CorruptCheckpointException(indexPath, null, "expected a JSON object with a 'weight_map' object (tensor name -> shard file)");
            var entries = new List<(string, string)>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new CorruptCheckpointException(indexPath, entry.Name, $"weight_map value is a JSON {entry.Value.ValueKind}, expected a shard file name");
                string shard = entry.Value.GetString()!;
                // Shards live beside the index; a path here could reach files outside the model folder.
                if (shard.Length == 0 || Path.GetFileName(shard) != shard)
                    throw new CorruptCheckpointException(indexPath, entry.Name, $"weight_map value '{shard}' is not a file name in the index's folder");
                if (!seen.Add(entry.Name))
                    throw new CorruptCheckpointException(indexPath, entry.Name, "appears twice in weight_map");
                entries.Add((entry.Name, shard));
            }
            return entries;
        }
    }

    /// <inheritdoc/>
    public bool Contains(string name) => _owner.ContainsKey(name);

    /// <inheritdoc/>
    public TensorEntry Describe(string name) => Shard(name).Describe(name);

    /// <inheritdoc/>
    public float[] ReadFloat32(string name, params int[] expectedShape) => Shard(name).ReadFloat32(name, expectedShape);

    private SafetensorsFile Shard(string name) =>
        _owner.TryGetValue(name, out SafetensorsFile? shard) ? shard : throw new MissingTensorException(Location, name);

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (SafetensorsFile shard in _shards) shard.Dispose();
    }
}
