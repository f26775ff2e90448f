// Three digits from the embedded model, 50 DDIM steps with classifier-free guidance, SmoothCache on the shipped
// alpha 0.15 schedule; each image printed as text. Runs on CUDA if the machine has it, else on the CPU (a few seconds).
using SmoothCache.Caching;
using SmoothCache.Kernels;
using SmoothCache.Sampling;

string root = AppContext.BaseDirectory;    // the packages put models/ and schedules/ beside the program
using var backend = Backend.Create(DeviceKind.Auto);
using var pipe = DiTPipeline.Load(Path.Combine(root, "models", "dit-digits"), backend);
var schedule = CacheSchedule.Load(Path.Combine(root, "schedules", "dit-digits", "ddim-50-a0.15.json"));

GenerationResult result;
using (var cache = SmoothCacheHelper.Enable(pipe.Transformer, schedule))
{
    result = pipe.Generate(new GenerationOptions { Labels = [3, 1, 4], Steps = 50, Seed = 33 });
    Console.WriteLine($"{backend.DeviceName}: {result.Elapsed.TotalSeconds:F2} s; {cache.Stats()}");
}

// Images are NHWC in [0, 1] (result.Images, [3, 16, 16, 1] here); ImageBytes(n) gives image n in 8 bits, row by row,
// as an image library's bitmap takes it.
int count = result.ImageShape[0], height = result.ImageShape[1], width = result.ImageShape[2], channels = result.ImageShape[3];
var pixels = Enumerable.Range(0, count).Select(result.ImageBytes).ToArray();
const string shades = " .:-=+*#%@";
for (int y = 0; y < height; y++)
{
    var line = new System.Text.StringBuilder();
    for (int n = 0; n < count; n++)
    {
        for (int x = 0; x < width; x++)
            line.Append(shades[pixels[n][(y * width + x) * channels] * (shades.Length - 1) / 255]);
        line.Append("   ");
    }
    Console.WriteLine(line.ToString().TrimEnd());
}
