import RunnerCLI

await RunnerMain.main()
