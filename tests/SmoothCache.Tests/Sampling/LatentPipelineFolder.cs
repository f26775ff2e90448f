using System.Text.Json.Nodes;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Sampling;

/// <summary>
/// The diffusers pipeline the fixture pipeline-ddim12 came from, assembled in a temporary folder:
/// transformer/ = random/dit-small, vae/ = random/vae-small, scheduler/ = DiT's DDIM config (as in
/// models/dit-digits), and a model_index.json with the given id2label entries.
/// </summary>
public sealed class LatentPipelineFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("smoothcache-pipeline-").FullName;

    public LatentPipelineFolder(IReadOnlyDictionary<int, string>? id2Label = null)
    {
        CopyFolder(Fixture("random", "dit-small"), Component("transformer"));
        CopyFolder(Fixture("random", "vae-small"), Component("vae"));
        CopyFolder(RepoFile("models", "dit-digits", "scheduler"), Component("scheduler"));
        var index = new JsonObject
        {
            ["_class_name"] = "DiTPipeline",
            ["transformer"] = new JsonArray("diffusers", "DiTTransformer2DModel"),
            ["vae"] = new JsonArray("diffusers", "AutoencoderKL"),
            ["scheduler"] = new JsonArray("diffusers", "DDIMScheduler"),
        };
        if (id2Label is not null)
        {
            var labels = new JsonObject();
            foreach (var (id, name) in id2Label) labels[id.ToString()] = name;
            index["id2label"] = labels;
        }
        File.WriteAllText(System.IO.Path.Combine(Path, "model_index.json"), index.ToJsonString());
    }

    public string Component(string name) => System.IO.Path.Combine(Path, name);

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
            File.Copy(file, System.IO.Path.Combine(to, System.IO.Path.GetFileName(file)));
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
