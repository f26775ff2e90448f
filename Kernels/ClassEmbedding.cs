using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>out[r, :] = f(addend[r, :] + table[labels[r mod B], :]) for B labels: the class-embedding lookup, fused
/// with the sum that forms the conditioning vector c = t_emb + y_emb and the function the adaLN projections read it
/// through (SiLU). table is [classes + 1, D]; addend has B rows, or several steps' B rows each (the labels repeat).</summary>
public static class ClassEmbedding
{
    public struct Args<TEpilogue> : IElementKernel where TEpilogue : struct, IEpilogue
    {
        public ArrayView<int> Labels;
        public ArrayView<float> Table, Addend, Out;
        public int D;

        public readonly void Compute(int index)
        {
            int b = index / D;
            int d = index - b * D;
            Out[index] = default(TEpilogue).Apply(Addend[index] + Table[Labels[b % Labels.IntLength] * D + d]);
        }
    }

    public static Tensor Run<TEpilogue>(ArrayView<int> labels, Tensor table, Tensor addend) where TEpilogue : struct, IEpilogue
    {
        int d = table.Dim(1);
        if (addend.Dim(-1) != d || labels.Length == 0 || addend.Length / d % labels.Length != 0)
            throw new ArgumentException($"ClassEmbedding: addend {addend.ShapeText} is not a multiple of {labels.Length} rows of the table's width {d}");
        var output = table.Backend.Arena.Rent(addend.Shape);
        var args = new Args<TEpilogue> { Labels = labels, Table = table.View, Addend = addend.View, Out = output.View, D = d };
        ElementLauncher.Launch(table.Backend, (int)addend.Length, args);
        return output;
    }
}
