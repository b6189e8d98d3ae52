'use strict';

// A CDK Pipelines app: one self-mutating CodePipeline in the tooling account
// that deploys the same `Service` stack to Dev, UAT and Prod accounts.
// Synthesized by ../synth.sh into ./cdk.out, which the tests use as a fixture.

const path = require('path');
const cdk = require('aws-cdk-lib');
const pipelines = require('aws-cdk-lib/pipelines');
const s3 = require('aws-cdk-lib/aws-s3');
const kms = require('aws-cdk-lib/aws-kms');
const dynamodb = require('aws-cdk-lib/aws-dynamodb');
const sqs = require('aws-cdk-lib/aws-sqs');
const sns = require('aws-cdk-lib/aws-sns');
const logs = require('aws-cdk-lib/aws-logs');
const secretsmanager = require('aws-cdk-lib/aws-secretsmanager');
const lambda = require('aws-cdk-lib/aws-lambda');
const codebuild = require('aws-cdk-lib/aws-codebuild');

const REGION = 'eu-west-1';
const TOOLING_ACCOUNT = '111111111111';
const STAGES = [
  { id: 'Dev', account: '222222222222' },
  { id: 'UAT', account: '333333333333' },
  { id: 'Prod', account: '444444444444' },
];

// Nested stack with its own bucket and function.
class StorageNestedStack extends cdk.NestedStack {
  constructor(scope, id, props) {
    super(scope, id, props);

    const archive = new s3.Bucket(this, 'ArchiveBucket');

    const archiver = new lambda.Function(this, 'Archiver', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline(
        'exports.handler = async () => ({ archived: true });',
      ),
      environment: { ARCHIVE_BUCKET: archive.bucketName },
    });
    archive.grantWrite(archiver);
  }
}

// The workload deployed to every stage. Everything uses default settings on
// purpose: these are the resources cdk-harden is expected to change.
class ServiceStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);

    new s3.Bucket(this, 'UploadsBucket');
    new s3.Bucket(this, 'ReportsBucket');

    // Symmetric customer-managed key, default settings (rotation off),
    // used to encrypt the second queue.
    const key = new kms.Key(this, 'DataKey');

    const table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
    });

    const queue = new sqs.Queue(this, 'Queue');

    new sqs.Queue(this, 'EncryptedQueue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
    });

    new sns.Topic(this, 'Topic');

    new logs.LogGroup(this, 'AuditLogGroup');

    new secretsmanager.Secret(this, 'ApiSecret');

    const handler = new lambda.Function(this, 'Handler', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline(
        'exports.handler = async (event) => ({ statusCode: 200, body: JSON.stringify(event) });',
      ),
      environment: {
        TABLE_NAME: table.tableName,
        QUEUE_URL: queue.queueUrl,
      },
    });
    table.grantReadData(handler);
    queue.grantSendMessages(handler);

    new lambda.Function(this, 'Worker', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(path.join(__dirname, 'lambda')),
    });

    new codebuild.Project(this, 'Build', {
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        phases: {
          install: { commands: ['pip install -r requirements.txt'] },
          build: { commands: ['python -m pytest'] },
        },
      }),
      environmentVariables: {
        PIP_INDEX_URL: { value: 'https://pypi.internal.example.com/simple' },
        BUILD_FLAVOR: { value: 'release' },
      },
    });

    new StorageNestedStack(this, 'Storage');
  }
}

class ServiceStage extends cdk.Stage {
  constructor(scope, id, props) {
    super(scope, id, props);
    new ServiceStack(this, 'Service');
  }
}

class PipelineStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);

    const pipeline = new pipelines.CodePipeline(this, 'Pipeline', {
      crossAccountKeys: true,
      synth: new pipelines.ShellStep('Synth', {
        input: pipelines.CodePipelineSource.connection('example-org/example-app', 'main', {
          connectionArn:
            'arn:aws:codestar-connections:eu-west-1:111111111111:connection/00000000-0000-0000-0000-000000000000',
        }),
        commands: ['npm ci', 'npx cdk synth', 'npx cdk-harden apply cdk.out'],
      }),
    });

    for (const stage of STAGES) {
      pipeline.addStage(
        new ServiceStage(this, stage.id, {
          env: { account: stage.account, region: REGION },
        }),
      );
    }
  }
}

const app = new cdk.App({
  // Creation stack traces would record absolute source paths of the machine
  // that ran the synthesis; leave them out so the assembly is reproducible.
  context: { 'aws:cdk:disable-creation-stack-traces': true },
});
new PipelineStack(app, 'PipelineStack', {
  env: { account: TOOLING_ACCOUNT, region: REGION },
});
app.synth();
