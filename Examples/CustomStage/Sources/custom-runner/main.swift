import CustomStages
import RunnerCLI

// The whole runner command line (run, validate, stages, graph), with this
// package's stage types next to the built-in ones.
await RunnerMain.main(registry: try CustomStages.registry())
