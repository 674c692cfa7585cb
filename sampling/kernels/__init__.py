"""The algorithms of adaptive equitable sampling (Cai et al., FAccT 2022): learning curves per group (`curves`),
objectives and optimal budget allocation with the equal and proportional baselines (`allocate`), and the adaptive
rounds (`adaptive`). Pure numpy and scipy: no I/O."""
