using SmoothCache.Cli;
using SmoothCache.Tests.Cli;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Sampling;

/// <summary>--labels by name, with id2label values written as ImageNet's are (synonyms joined by ", ").</summary>
public class LabelParsingTests
{
    private static readonly Dictionary<int, string> ImageNetStyle = new()
    {
        [0] = "tench, Tinca tinca",
        [1] = "goldfish, Carassius auratus",
        [134] = "crane",
        [207] = "golden retriever",
        [517] = "crane",
        [879] = "umbrella",
    };

    private static DiTPipeline Load(LatentPipelineFolder folder) => DiTPipeline.Load(folder.Path, Cpu);

    [Fact]
    public void AnId2LabelIdPastTheModelsClassesIsRefused()
    {
        using var folder = new LatentPipelineFolder(new Dictionary<int, string> { [3] = "three", [5000] = "far off" });
        var e = Assert.Throws<ModelConfigException>(() => Load(folder));
        Assert.Contains("model_index.json: key 'id2label': class id 5000 is past the transformer's 1000 classes", e.Message);
    }

    [Fact]
    public void NamesSynonymsWholeEntriesAndIdsMix()
    {
        using var folder = new LatentPipelineFolder(ImageNetStyle);
        using var pipeline = Load(folder);
        Assert.Equal(6, pipeline.Id2Label.Count);
        Assert.Equal([207, 879], pipeline.ParseLabels("golden retriever,umbrella"));
        Assert.Equal([0], pipeline.ParseLabels("tench, Tinca tinca"));
        Assert.Equal([0], pipeline.ParseLabels("Tinca tinca"));
        Assert.Equal([0, 1, 879], pipeline.ParseLabels("TENCH,goldfish, Carassius auratus ,Umbrella"));
        Assert.Equal([0, 0, 42], pipeline.ParseLabels("tench, Tinca tinca, tench, 42"));
        // Only runs as long as the longest entry are tried as one name (every longer run took cubic time: 65,536 labels
        // hung the command line before its batch check).
        var many = Enumerable.Range(0, 5000).Select(i => i % 1000).ToArray();
        Assert.Equal(many, pipeline.ParseLabels(string.Join(",", many)));
    }

    [Fact]
    public void AmbiguousAndUnknownNamesAreRefusedByName()
    {
        using var folder = new LatentPipelineFolder(ImageNetStyle);
        using var pipeline = Load(folder);
        var ambiguous = Assert.Throws<ArgumentException>(() => pipeline.ParseLabels("crane"));
        Assert.Contains("'crane'", ambiguous.Message);
        Assert.Contains("134", ambiguous.Message);
        Assert.Contains("517", ambiguous.Message);
        Assert.Contains("'poodle'", Assert.Throws<ArgumentException>(() => pipeline.ParseLabels("umbrella,poodle")).Message);
        Assert.Contains("1001", Assert.Throws<ArgumentException>(() => pipeline.ParseLabels("1001")).Message);
        Assert.Throws<ArgumentException>(() => pipeline.ParseLabels(" , "));
        // A stray comma is refused rather than dropped: "1,,2" may have lost a label.
        Assert.Contains("entry 2 is empty", Assert.Throws<ArgumentException>(() => pipeline.ParseLabels("1,,2")).Message);
        Assert.Contains("entry 2 is empty", Assert.Throws<ArgumentException>(() => pipeline.ParseLabels("3,")).Message);
    }

    [Fact]
    public void ClassIdsWithoutANameAreWarnedAboutOnceWhereTheModelNamesItsClasses()
    {
        using (var folder = new LatentPipelineFolder(ImageNetStyle))
        using (var pipeline = Load(folder))
        {
            Assert.Empty(pipeline.LabelWarnings([0, 879, 0, 1000])); // 1000: the null class, an unconditional image
            var warning = Assert.Single(pipeline.LabelWarnings([42, 0, 42, 7]));
            Assert.Contains("class 42, 7 ", warning);
            Assert.Contains("6 of its 1000", warning);

            string png = Path.Combine(folder.Path, "grid.png");
            var run = CliRunner.Run("generate", "--model", folder.Path, "--labels", "umbrella,42", "--steps", "1", "--out", png, "--device", "cpu");
            Assert.True(run.ExitCode == ExitCodes.Success, run.Error);
            Assert.Contains("warning: no id2label name for class 42 ", Assert.Single(run.ErrorLines, l => l.Contains("warning")));
            Assert.True(File.Exists(png));
        }
        // A model without id2label names no class: nothing to warn about.
        using (var unnamed = new LatentPipelineFolder())
        using (var pipeline = Load(unnamed))
            Assert.Empty(pipeline.LabelWarnings([42]));
    }

    [Fact]
    public void CliGeneratesByClassName()
    {
        using var folder = new LatentPipelineFolder(ImageNetStyle);
        string images = Path.Combine(folder.Path, "images.safetensors"), png = Path.Combine(folder.Path, "grid.png");
        var run = CliRunner.Run("generate", "--model", folder.Path, "--labels", "golden retriever,umbrella", "--steps", "2",
            "--save-images", images, "--out", png, "--device", "cpu");
        Assert.True(run.ExitCode == ExitCodes.Success, run.Error);
        Assert.DoesNotContain("warning", run.Error);
        Assert.True(File.Exists(png));
        using (var saved = SafetensorsFile.Open(images))
            Assert.Equal([2, 16, 16, 3], saved.Describe("images").Shape);

        string cranes = Path.Combine(folder.Path, "cranes.png");
        var ambiguous = CliRunner.Run("generate", "--model", folder.Path, "--labels", "crane", "--steps", "2", "--out", cranes, "--device", "cpu");
        Assert.Equal(ExitCodes.BadInput, ambiguous.ExitCode);
        Assert.Contains("'crane'", Assert.Single(ambiguous.ErrorLines));
        Assert.False(File.Exists(cranes));
    }
}
