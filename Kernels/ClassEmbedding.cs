using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>out[b, :] = addend[b, :] + table[labels[b], :]: the class-embedding lookup, fused with
/// the sum that forms the conditioning vector c = t_emb + y_emb. table is [classes + 1, D].</summary>
public static class ClassEmbedding
{
    public struct Args : IElementKernel
    {
        public ArrayView<int> Labels;
        public ArrayView<float> Table, Addend, Out;
        public int D;

        public readonly void Compute(int index)
        {
            int b = index / D;
            int d = index - b * D;
            Out[index] = Addend[index] + Table[Labels[b] * D + d];
        }
    }

    public static Tensor Run(ArrayView<int> labels, Tensor table, Tensor addend)
    {
        int d = table.Dim(1);
        var output = table.Backend.Arena.Rent(addend.Shape);
        var args = new Args { Labels = labels, Table = table.View, Addend = addend.View, Out = output.View, D = d };
        ElementLauncher.Launch(table.Backend, (int)addend.Length, args);
        return output;
    }
}
