"""Speed kernels for the models of rnn_experiments/models/: the same equations, computed faster.
fused.py: the CPU path (one matrix product for all time steps' input terms, hand-written backward
pass); triton_cells.py: the GPU path (Triton). Each is tested equal to the equations."""
