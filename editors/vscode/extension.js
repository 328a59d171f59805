// The escope debug type: VS Code starts `escope dap` (a Debug Adapter
// Protocol server over stdio) for each debug session, and a
// vscode://pytest-escope.escope/replay?test=...&cwd=... link (the one the
// pytest terminal summary prints inside VS Code) starts such a session.
'use strict';

const path = require('path');
const vscode = require('vscode');

function escopeCommand(config, folder) {
    const configured = config.escopePath
        || vscode.workspace.getConfiguration('escope', folder ? folder.uri : undefined).get('path')
        || 'escope';
    // a relative path such as .venv/bin/escope is the workspace folder's
    if (folder && configured.includes(path.sep) && !path.isAbsolute(configured)) {
        return path.join(folder.uri.fsPath, configured);
    }
    return configured;
}

class EscopeAdapterFactory {
    createDebugAdapterDescriptor(session) {
        const config = session.configuration;
        const cwd = config.cwd || (session.workspaceFolder ? session.workspaceFolder.uri.fsPath : undefined);
        return new vscode.DebugAdapterExecutable(escopeCommand(config, session.workspaceFolder), ['dap'],
            cwd ? { cwd } : {});
    }
}

class EscopeConfigurationProvider {
    // F5 with no launch.json: replay the latest failure of the workspace
    resolveDebugConfiguration(folder, config) {
        if (!config.type && !config.request && !config.name) {
            return { type: 'escope', request: 'launch', name: 'escope: replay the latest failure',
                     cwd: folder ? folder.uri.fsPath : undefined, stopAt: 'failure' };
        }
        return config;
    }
}

function replayFromUri(uri) {
    if (uri.path !== '/replay') {
        vscode.window.showErrorMessage(`escope: unknown link ${uri.toString()}; links look like /replay?test=...`);
        return;
    }
    const query = new URLSearchParams(uri.query);
    const config = { type: 'escope', request: 'launch', stopAt: query.get('stopAt') || 'failure' };
    for (const key of ['test', 'recording', 'run', 'cwd']) {
        if (query.get(key)) {
            config[key] = query.get(key);
        }
    }
    config.name = `escope: ${config.test || config.recording || 'latest failure'}`;
    const cwd = config.cwd;
    const folder = (vscode.workspace.workspaceFolders || []).find(f => cwd && cwd.startsWith(f.uri.fsPath))
        || (vscode.workspace.workspaceFolders || [])[0];
    return vscode.debug.startDebugging(folder, config);
}

function activate(context) {
    context.subscriptions.push(
        vscode.debug.registerDebugAdapterDescriptorFactory('escope', new EscopeAdapterFactory()),
        vscode.debug.registerDebugConfigurationProvider('escope', new EscopeConfigurationProvider()),
        vscode.window.registerUriHandler({ handleUri: replayFromUri }),
    );
}

function deactivate() {}

module.exports = { activate, deactivate };
