"""Development tools for checkouts: what the tests, the benchmarks and the demo share (local
infrastructure, the demo, synthetic data such as `devtools.synthetic`). Nothing under
`services/` or `shared/` imports it.
"""
