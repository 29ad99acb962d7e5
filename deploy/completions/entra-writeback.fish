# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_entra_writeback_global_optspecs
    string join \n config= strict-permissions h/help V/version
end

function __fish_entra_writeback_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_entra_writeback_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_entra_writeback_using_subcommand
    set -l cmd (__fish_entra_writeback_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -s V -l version -d 'Print version'
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -f -a "run" -d 'Poll Graph, queue, apply to AD, forever (or one round with --once)'
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -f -a "plan" -d 'Print what a round would change in AD; writes nothing'
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -f -a "check" -d 'Diagnose config, Graph (token, delta permissions) and AD (TLS, bind, schema, each owned OU and the rights there); reports every point, exit 1 if any failed'
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -f -a "queue" -d 'Inspect the queue'
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -f -a "replay" -d 'Re-queue changes for re-application'
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -f -a "resync" -d 'Forget the delta cursor: the next round is a full enumeration that reconciles AD'
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -f -a "approve-deletes" -d 'Release deletes held back by the delete threshold'
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -f -a "approve-writes" -d 'Resume writing groups frozen because another writer kept reverting them (stop that tool first); without arguments, list them'
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -f -a "decommission" -d 'List every group the service owns in AD; with --yes, delete them all'
complete -c entra-writeback -n "__fish_entra_writeback_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand run" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand run" -l once -d 'One full delta round, drain the queue, exit (1 if anything is left or dead-lettered)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand run" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand run" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand plan" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand plan" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand plan" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand check" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand check" -l json -d 'A JSON array of {name, ok, detail, fix} instead of lines'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand check" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand check" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and not __fish_seen_subcommand_from status list show help" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and not __fish_seen_subcommand_from status list show help" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and not __fish_seen_subcommand_from status list show help" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and not __fish_seen_subcommand_from status list show help" -f -a "status" -d 'Depth, oldest age, dead letters, cursor age'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and not __fish_seen_subcommand_from status list show help" -f -a "list" -d 'Queued (or dead-lettered) changes'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and not __fish_seen_subcommand_from status list show help" -f -a "show" -d 'One change by sequence number'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and not __fish_seen_subcommand_from status list show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from status" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from status" -l json -d 'JSON output'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from status" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from list" -l limit -d 'At most this many' -r
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from list" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from list" -l dead -d 'Dead letters instead of pending changes'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from list" -l json -d 'JSON output'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from list" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from show" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from show" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "status" -d 'Depth, oldest age, dead letters, cursor age'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "list" -d 'Queued (or dead-lettered) changes'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "show" -d 'One change by sequence number'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand replay" -l since -d 'Journal entries applied since this time (RFC 3339, or a duration ago such as `2h`)' -r
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand replay" -l from -d 'Journal entries from this sequence number on' -r
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand replay" -l group -d 'Only this group (cloud object id)' -r
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand replay" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand replay" -l dead -d 'Dead letters'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand replay" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand replay" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand resync" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand resync" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand resync" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand approve-deletes" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand approve-deletes" -l all -d 'All held deletes'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand approve-deletes" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand approve-deletes" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand approve-writes" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand approve-writes" -l all -d 'All frozen groups'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand approve-writes" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand approve-writes" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand decommission" -l config -d 'Configuration file' -r -F
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand decommission" -l yes -d 'Really delete'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand decommission" -l strict-permissions -d 'Refuse to start when the config file holds a secret and its group or others can read it (without it, that is a warning)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand decommission" -s h -l help -d 'Print help'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and not __fish_seen_subcommand_from run plan check queue replay resync approve-deletes approve-writes decommission help" -f -a "run" -d 'Poll Graph, queue, apply to AD, forever (or one round with --once)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and not __fish_seen_subcommand_from run plan check queue replay resync approve-deletes approve-writes decommission help" -f -a "plan" -d 'Print what a round would change in AD; writes nothing'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and not __fish_seen_subcommand_from run plan check queue replay resync approve-deletes approve-writes decommission help" -f -a "check" -d 'Diagnose config, Graph (token, delta permissions) and AD (TLS, bind, schema, each owned OU and the rights there); reports every point, exit 1 if any failed'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and not __fish_seen_subcommand_from run plan check queue replay resync approve-deletes approve-writes decommission help" -f -a "queue" -d 'Inspect the queue'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and not __fish_seen_subcommand_from run plan check queue replay resync approve-deletes approve-writes decommission help" -f -a "replay" -d 'Re-queue changes for re-application'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and not __fish_seen_subcommand_from run plan check queue replay resync approve-deletes approve-writes decommission help" -f -a "resync" -d 'Forget the delta cursor: the next round is a full enumeration that reconciles AD'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and not __fish_seen_subcommand_from run plan check queue replay resync approve-deletes approve-writes decommission help" -f -a "approve-deletes" -d 'Release deletes held back by the delete threshold'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and not __fish_seen_subcommand_from run plan check queue replay resync approve-deletes approve-writes decommission help" -f -a "approve-writes" -d 'Resume writing groups frozen because another writer kept reverting them (stop that tool first); without arguments, list them'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and not __fish_seen_subcommand_from run plan check queue replay resync approve-deletes approve-writes decommission help" -f -a "decommission" -d 'List every group the service owns in AD; with --yes, delete them all'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and not __fish_seen_subcommand_from run plan check queue replay resync approve-deletes approve-writes decommission help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "status" -d 'Depth, oldest age, dead letters, cursor age'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "list" -d 'Queued (or dead-lettered) changes'
complete -c entra-writeback -n "__fish_entra_writeback_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "show" -d 'One change by sequence number'
